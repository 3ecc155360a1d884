"""AlpacaEval's instructions with the reference outputs (config alpaca_eval.instructions: a fetched hub
file, read from the hub cache at the fetched commit, or a local file), validated, as the one file the
AlpacaEval rules read. Run by rule evaluate_alpaca_instructions."""

from sppo import alpaca_eval, io, job

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0])

source = snakemake.params.source
instructions = alpaca_eval.load_instructions(source)
log.info("%d instructions from %s", len(instructions), source)
io.write_json(snakemake.output.instructions, instructions)
job.finish(snakemake)
