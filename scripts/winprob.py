"""Win probabilities and (chosen, rejected) pairs of an iteration. Run by rule winprob."""

from sppo import io, job, winprob

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0])

required = ["scores", "logits"] + (["finish_reasons"] if snakemake.params.drop_truncated else [])
ranked = [row for path in snakemake.input for row in io.read_jsonl(path, required=required)]
pairs = winprob.pairs(ranked, snakemake.params.source, snakemake.params.drop_truncated)
same = sum(p["chosen_index"] == p["rejected_index"] for p in pairs)
log.info(
    "%d pairs from %d prompts; %d with all responses tied (chosen = rejected)", len(pairs), len(ranked), same
)
io.write_jsonl(snakemake.output[0], pairs)
job.finish(snakemake)
