"""Build the tiny base model π_0 (model.base: tiny). Run by rule basemodel."""

from sppo import basemodel, io, job, split

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
job.start(snakemake.log[0], snakemake.threads)

prompts = split.read_local(snakemake.input.prompts, snakemake.params.column)
with io.atomic_directory(snakemake.output.model) as tmp:
    basemodel.build(
        [p for p in prompts if isinstance(p, str)], snakemake.params.settings, snakemake.params.seed, tmp
    )
job.finish(snakemake)
