"""π_t answers AlpacaEval's instructions once, as evaluate_answers answers the held-out prompts. Run
by rule evaluate_alpaca_answers; the body runs only as the main module (vLLM may spawn workers)."""

from sppo import alpaca_eval, evaluate, io, job


def main(snakemake) -> None:
    job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)
    instructions = alpaca_eval.read_instructions(snakemake.input.instructions)
    rows, _ = evaluate.answer(
        snakemake.params.model,
        snakemake.params.model_config,
        alpaca_eval.prompts(instructions),
        snakemake.params.settings,
        snakemake.params.seed,
    )
    io.write_json(snakemake.output.outputs, evaluate.alpaca_eval_outputs(rows, snakemake.params.name))
    job.finish(snakemake)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (provided by Snakemake)
