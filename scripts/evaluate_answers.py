"""π_t answers every held-out prompt once. Run by rule evaluate_answers."""

from sppo import evaluate, generate, io, job, models

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads)

settings = snakemake.params.settings
prompts = io.read_jsonl(snakemake.input.prompts, required=["id", "prompt"])
model, tokenizer = models.load_policy(snakemake.params.model, snakemake.params.model_config)
rows = []
for index, start in enumerate(range(0, len(prompts), settings["batch_size"])):
    batch = prompts[start : start + settings["batch_size"]]
    answers = generate.sample(
        model,
        tokenizer,
        [r["prompt"] for r in batch],
        seed=generate.batch_seed(snakemake.params.seed, index),
        temperature=settings["temperature"],
        top_p=settings["top_p"],
        max_new_tokens=settings["max_new_tokens"],
    )
    rows += [{"id": r["id"], "prompt": r["prompt"], "output": a} for r, a in zip(batch, answers, strict=True)]
    log.info("answered %d/%d prompts", len(rows), len(prompts))
io.write_jsonl(snakemake.output.answers, rows)
io.write_json(snakemake.output.alpaca_eval, evaluate.alpaca_eval_outputs(rows, snakemake.params.name))
job.finish(snakemake)
