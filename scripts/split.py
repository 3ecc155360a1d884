"""Cut the prompts into one part per iteration and a held-out evaluation set. Run by rule split."""

from sppo import io, job, split

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
job.start(snakemake.log[0])

result = split.run(
    snakemake.params.prompts, snakemake.params.split, len(snakemake.output.parts), snakemake.params.seed
)
for path, part in zip(snakemake.output.parts, result["parts"], strict=True):
    io.write_jsonl(path, split.rows(part))
io.write_jsonl(snakemake.output.eval, split.rows(result["eval"]))
io.write_json(
    snakemake.output.stats,
    {"dropped": result["dropped"], "parts": [len(p) for p in result["parts"]], "eval": len(result["eval"])},
)
job.finish(snakemake)
