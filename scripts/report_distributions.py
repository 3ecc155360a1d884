"""P̂ of chosen and rejected and the judge's scores per iteration. Run by rule report_distributions."""

from sppo import io, job
from sppo.report import distributions, series

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
job.start(snakemake.log[0])

shards, ranked = snakemake.params.shards, list(snakemake.input.ranked)
found = [
    (variant, t, distributions.values(pairs, ranked[i * shards : (i + 1) * shards]))
    for i, (variant, t, pairs) in enumerate(series.labelled(snakemake.input.pairs, snakemake.params.labels))
]
df, by_series = distributions.collect(found)
with io.atomic_path(snakemake.output.table) as tmp:
    df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
with io.atomic_path(snakemake.output.plot) as tmp:
    distributions.plot(by_series, tmp)
job.finish(snakemake)
