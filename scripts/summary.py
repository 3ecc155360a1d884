"""Table and plot of the evaluation metrics across iterations (and variants). Run by rule summary."""

from sppo import io, job, summary

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
job.start(snakemake.log[0])

names, iterations = snakemake.params.variants, snakemake.params.iterations
leaderboard = [io.read_json(path) for path in snakemake.input.leaderboard]
alpaca = [io.read_json(path) for path in snakemake.input.alpaca]
df = summary.table(
    summary.by_variant([io.read_json(path) for path in snakemake.input.metrics], names, iterations),
    summary.by_variant(leaderboard, names, iterations) if leaderboard else None,
    summary.by_variant(alpaca, names, iterations) if alpaca else None,
)
with io.atomic_path(snakemake.output.table) as tmp:
    df.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
with io.atomic_path(snakemake.output.page) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write(summary.to_html(df))
with io.atomic_path(snakemake.output.plot) as tmp:
    summary.plot(df, tmp)
with io.atomic_path(snakemake.output.length_plot) as tmp:
    summary.plot_length(df, tmp)
job.finish(snakemake)
