"""Sample K responses per prompt for one shard of an iteration. Run by rule generate."""

from sppo import generate, io, job, models

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads)

settings = snakemake.params.settings
prompts = io.read_jsonl(snakemake.input.prompts, required=["id", "prompt"])
batches = generate.shard_rows(
    prompts, int(snakemake.wildcards.s), snakemake.params.shards, settings["batch_size"]
)
if settings["backend"] == "vllm":
    from sppo import generate_vllm

    rows = generate_vllm.generate_shard(
        snakemake.params.model, snakemake.params.model_config, batches, settings
    )
else:
    model, tokenizer = models.load_policy(snakemake.params.model, snakemake.params.model_config)
    rows = generate.generate_shard(model, tokenizer, batches, settings)
io.write_jsonl(snakemake.output[0], rows)
job.finish(snakemake)
