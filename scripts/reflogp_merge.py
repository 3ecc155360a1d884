"""The reference log-prob shards of an iteration merged into the pairs train reads (rule reflogp_merge)."""

from sppo import io, job, reflogp

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0])

pairs = io.read_jsonl(snakemake.input.pairs, required=["id"])
shards = [io.read_jsonl(path, required=["id", "ref_logps"]) for path in snakemake.input.shards]
rows = reflogp.merge(pairs, shards)
log.info("%d pairs with reference log-probs from %d shards", len(rows), len(shards))
io.write_jsonl(snakemake.output[0], rows)
job.finish(snakemake)
