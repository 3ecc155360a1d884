"""π_t answers every held-out prompt once, with the run's generation backend. Run by rule
evaluate_answers (`script:`); the body runs only as the main module, as in scripts/generate.py,
because vLLM may spawn workers that import the main module again."""

from sppo import evaluate, io, job


def main(snakemake) -> None:
    job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)
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


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (provided by Snakemake)
