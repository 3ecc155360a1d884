"""Judge the K responses of every prompt of one shard. Run by rule rank."""

from sppo import io, job, rank
from sppo.judges import load_judge

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads)

judge = load_judge(snakemake.params.judge, "train")
identity = judge.identity()  # hashes the judge's weights: once
log.info("judge: %s", identity)
rows, truncated = rank.rank_rows(
    judge,
    io.read_jsonl(snakemake.input[0], required=["id", "prompt", "responses"]),
    snakemake.params.chunk_prompts,
)
log.info("inputs cut to the judge's length limits: %s", truncated or "none")
io.write_jsonl(snakemake.output.ranked, rows)
io.write_json(snakemake.output.judge, {"judge": identity, "truncated": truncated})
job.finish(snakemake)
