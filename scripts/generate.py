"""Sample K responses per prompt for one shard of an iteration. Run by rule generate (`script:`).

The body runs only as the main module: vLLM may start its workers with multiprocessing's "spawn",
which imports the main module again (as ``__mp_main__``) in every worker, and Snakemake runs this
file as the main module of its own ``python`` process.
"""

from sppo import generate, io, job, models


def main(snakemake) -> None:
    log = job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)
    settings = snakemake.params.settings
    prompts = io.read_jsonl(snakemake.input.prompts, required=["id", "prompt"])
    batches = generate.shard_rows(
        prompts, int(snakemake.wildcards.s), snakemake.params.shards, settings["batch_size"]
    )
    if settings["backend"] == "vllm":
        from sppo import generate_vllm

        rows = generate_vllm.generate_shard(
            snakemake.params.model, snakemake.params.model_config, batches, settings
        )
    else:
        model, tokenizer = models.load_policy(snakemake.params.model, snakemake.params.model_config)
        rows = generate.generate_shard(model, tokenizer, batches, settings)
    log.info("%d responses", len(rows))
    io.write_jsonl(snakemake.output[0], rows)
    job.finish(snakemake)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (provided by Snakemake)
