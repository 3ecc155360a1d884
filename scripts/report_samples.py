"""Held-out answers of π_0 … π_T side by side with the judge's preference. Run by rule report_samples."""

from sppo import io, job
from sppo.report import samples

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
job.start(snakemake.log[0])

policies = [
    (variant, t, answers, annotations)
    for (variant, t), answers, annotations in zip(
        snakemake.params.labels, snakemake.input.answers, snakemake.input.annotations, strict=True
    )
]
df = samples.table(policies, snakemake.params.n, snakemake.params.seed)
with io.atomic_path(snakemake.output.table) as tmp:
    df.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
with io.atomic_path(snakemake.output.page) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write(samples.to_html(df))
job.finish(snakemake)
