"""The training judge and the independent judges side by side. Run by rule report_judges."""

from sppo import io, job
from sppo.report import judges

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
job.start(snakemake.log[0])

entries = [
    {"variant": v, "iteration": t, "judge": judge, "annotations": io.read_json(a), "metrics": io.read_json(m)}
    for (v, t, judge), a, m in zip(
        snakemake.params.labels, snakemake.input.annotations, snakemake.input.metrics, strict=True
    )
]
df = judges.table(entries, train=snakemake.params.train, eval_=snakemake.params.eval)
with io.atomic_path(snakemake.output.table) as tmp:
    df.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
with io.atomic_path(snakemake.output.page) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write(judges.to_html(df))
with io.atomic_path(snakemake.output.plot) as tmp:
    judges.plot(df, tmp)
job.finish(snakemake)
