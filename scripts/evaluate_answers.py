"""π_t answers every held-out prompt once, with the run's generation backend. Run by rule
evaluate_answers."""

from sppo import evaluate, io, job

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads)

prompts = io.read_jsonl(snakemake.input.prompts, required=["id", "prompt"])
rows, stats = evaluate.answer(
    snakemake.params.model,
    snakemake.params.model_config,
    prompts,
    snakemake.params.settings,
    snakemake.params.seed,
)
io.write_jsonl(snakemake.output.answers, rows)
io.write_json(snakemake.output.alpaca_eval, evaluate.alpaca_eval_outputs(rows, snakemake.params.name))
io.write_json(snakemake.output.stats, stats)
job.finish(snakemake)
