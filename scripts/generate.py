"""Sample K responses per prompt for one shard of an iteration. Run by rule generate."""

from sppo import generate, io, job

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads)

prompts = io.read_jsonl(snakemake.input.prompts, required=["id", "prompt"])
rows, stats = generate.respond(
    snakemake.params.model,
    snakemake.params.model_config,
    prompts,
    int(snakemake.wildcards.s),
    snakemake.params.shards,
    snakemake.params.settings,
)
io.write_jsonl(snakemake.output.samples, rows)
io.write_json(snakemake.output.stats, stats)
job.finish(snakemake)
