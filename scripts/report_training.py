"""Training curves of every trained π_t from the train logs. Run by rule report_training."""

from sppo import io, job
from sppo.report import series, training

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
job.start(snakemake.log[0])

df = training.table(series.labelled(snakemake.input.logs, snakemake.params.labels))
with io.atomic_path(snakemake.output.table) as tmp:
    df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
with io.atomic_path(snakemake.output.plot) as tmp:
    training.plot(df, tmp)
job.finish(snakemake)
