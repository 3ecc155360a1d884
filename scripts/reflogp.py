"""The reference policy's log-probabilities of the responses trained on. Run by rule reflogp."""

from sppo import io, job, models, reflogp

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)

settings = snakemake.params.settings
model, tokenizer = models.load_policy(snakemake.params.model, snakemake.params.model_config)
rows = reflogp.compute(
    model,
    tokenizer,
    io.read_jsonl(snakemake.input.pairs, required=["prompt", "chosen", "rejected"]),
    max_length=settings["max_length"],
    max_prompt_length=settings["max_prompt_length"],
    truncation=settings["truncation"],
    responses=settings["responses"],
    batch_size=settings["per_device_batch_size"],
    logprob_chunk=settings["logprob_chunk"],
)
io.write_jsonl(snakemake.output[0], rows)
job.finish(snakemake)
