"""The reference policy's log-probabilities of the responses trained on, for one shard of the pairs.
Run by rule reflogp."""

from sppo import io, job, models, reflogp

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)

settings = snakemake.params.settings
pairs = io.read_jsonl(snakemake.input.pairs, required=["id", "prompt", "chosen", "rejected"])
rows = reflogp.shard_rows(
    pairs, int(snakemake.wildcards.s), snakemake.params.shards, settings["per_device_batch_size"]
)
log.info(
    "shard %s of %d: %d of %d pairs", snakemake.wildcards.s, snakemake.params.shards, len(rows), len(pairs)
)
model, tokenizer = models.load_policy(snakemake.params.model, snakemake.params.model_config)
rows = reflogp.compute(
    model,
    tokenizer,
    rows,
    max_length=settings["max_length"],
    max_prompt_length=settings["max_prompt_length"],
    truncation=settings["truncation"],
    responses=settings["responses"],
    batch_size=settings["per_device_batch_size"],
    logprob_chunk=settings["logprob_chunk"],
    packing=settings["packing"],
)
io.write_jsonl(snakemake.output[0], rows)
job.finish(snakemake)
