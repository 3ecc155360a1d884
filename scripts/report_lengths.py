"""Lengths of the K samples and of the evaluation answers per iteration. Run by rule report_lengths."""

from sppo import io, job, models
from sppo.report import lengths, series

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0])

params, shards = snakemake.params, snakemake.params.shards
tokenizer = models.load_tokenizer(params.tokenizer, params.model_config)  # π_0's: one yardstick for all
generated, judged = list(snakemake.input.generated), list(snakemake.input.judged)
stats = list(snakemake.input.generated_stats)
rows = []
for i, (variant, t, _) in enumerate(series.labelled(params.limits, params.labels)):
    part = slice(i * shards, (i + 1) * shards)
    measured = lengths.samples(generated[part], judged[part], stats[part], tokenizer, params.limits[i])
    rows.append({"variant": variant, "iteration": t, "responses": "samples", **measured})
limits = {variant: lim for (variant, _), lim in zip(params.labels, params.limits, strict=True)}
answers = series.labelled(snakemake.input.answers, params.answer_labels)
for (variant, t, path), counts in zip(answers, snakemake.input.answer_stats, strict=True):
    measured = lengths.answers(
        path, counts, tokenizer, limits.get(variant, params.limits[0])
    )  # π_0: the first's
    rows.append({"variant": variant, "iteration": t, "responses": "answers", **measured})
log.info("measured %d sets of responses", len(rows))
df = lengths.table(rows)
with io.atomic_path(snakemake.output.table) as tmp:
    df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
with io.atomic_path(snakemake.output.plot) as tmp:
    lengths.plot(df, tmp)
job.finish(snakemake)
