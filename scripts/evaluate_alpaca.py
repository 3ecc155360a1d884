"""alpaca_eval's own evaluate of π_t's outputs against the reference outputs. Run by rule
evaluate_alpaca."""

from pathlib import Path

from sppo import alpaca_eval, io, job

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0])

settings = snakemake.params.settings
# alpaca_eval's annotator config and its cache of annotations live beside the outputs, undeclared,
# so a failed or rerun job keeps what it was sent back
work = Path(snakemake.output.metrics).with_name("alpaca_eval_work")
annotator = settings["annotator"]
if annotator == "local":
    annotator = alpaca_eval.write_local_annotator(
        work / "annotator",
        base_url=settings["base_url"],
        model=settings["model"],
        max_tokens=settings["max_tokens"],
        concurrency=settings["concurrency"],
    )
else:
    annotator = alpaca_eval.write_named_annotator(work / "annotator", annotator, settings["base_url"])
row, annotations = alpaca_eval.evaluate(
    io.read_json(snakemake.input.outputs),
    alpaca_eval.read_instructions(snakemake.input.instructions),
    annotator,
    output_dir=work / "output",
    glm=settings["glm"],
    api_key_env=settings["api_key_env"],
)
io.write_json(snakemake.output.annotations, annotations)
metrics = alpaca_eval.metrics(
    row, model=snakemake.params.name, annotator=settings["annotator"], glm=settings["glm"]
)
log.info(
    "AlpacaEval: win rate %.4f, LC win rate %.4f (%s)",
    metrics["win_rate"],
    metrics["lc_win_rate"],
    settings["glm"],
)
io.write_json(snakemake.output.metrics, metrics)
job.finish(snakemake)
