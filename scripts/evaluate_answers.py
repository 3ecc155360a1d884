"""π_t answers every held-out prompt once. Run by rule evaluate_answers."""

from sppo import evaluate, generate, io, job, models

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)

settings = snakemake.params.settings
prompts = io.read_jsonl(snakemake.input.prompts, required=["id", "prompt"])
model, tokenizer = models.load_policy(snakemake.params.model, snakemake.params.model_config)
# One sample per prompt, drawn as the generate stage draws sample k, with the run's seed.
one_sample = {**settings, "k": 1, "sample_seeds": [snakemake.params.seed]}
batches = generate.shard_rows(prompts, 0, 1, settings["batch_size"])
rows = [
    {"id": r["id"], "prompt": r["prompt"], "output": r["responses"][0]}
    for r in generate.generate_shard(model, tokenizer, batches, one_sample)
]
io.write_jsonl(snakemake.output.answers, rows)
io.write_json(snakemake.output.alpaca_eval, evaluate.alpaca_eval_outputs(rows, snakemake.params.name))
job.finish(snakemake)
