"""Time and peak memory per stage and iteration from the benchmark files. Run by rule report_resources."""

from sppo import io, job
from sppo.report import resources

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
job.start(snakemake.log[0])

df = resources.table(list(snakemake.input.benchmarks))
with io.atomic_path(snakemake.output.table) as tmp:
    df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
with io.atomic_path(snakemake.output.plot) as tmp:
    resources.plot(df, tmp)
job.finish(snakemake)
