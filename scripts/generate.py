"""Sample K responses per prompt for one shard of an iteration. Run by rule generate (`script:`).

The body runs only as the main module: vLLM may start its workers with multiprocessing's "spawn",
which imports the main module again (as ``__mp_main__``) in every worker, and Snakemake runs this
file as the main module of its own ``python`` process.
"""

from sppo import generate, io, job


def main(snakemake) -> None:
    job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)
    prompts = io.read_jsonl(snakemake.input.prompts, required=["id", "prompt"])
    rows, stats = generate.respond(
        snakemake.params.model,
        snakemake.params.model_config,
        prompts,
        int(snakemake.wildcards.s),
        snakemake.params.shards,
        snakemake.params.settings,
    )
    io.write_jsonl(snakemake.output.samples, rows)
    io.write_json(snakemake.output.stats, stats)
    job.finish(snakemake)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (provided by Snakemake)
