"""Compare π_t's answers with π_0's through the eval judge. Run by rule evaluate."""

from pathlib import Path

from sppo import evaluate, io, job
from sppo.judges import load_judge

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)

# An llm judge's request cache lives beside the outputs, undeclared, so a failed job keeps it.
cache = Path(snakemake.output.metrics).with_name("llm_judge_cache.jsonl")
judge = load_judge(snakemake.params.judge, "eval", cache_path=cache)
annotations = evaluate.annotate(
    judge,
    io.read_jsonl(snakemake.input.answers, required=["id", "prompt", "output"]),
    io.read_jsonl(snakemake.input.baseline, required=["id", "prompt", "output"]),
    model=snakemake.params.name,
    base=snakemake.params.base_name,
)
io.write_json(snakemake.output.annotations, annotations)
metrics = evaluate.metrics(
    annotations,
    judge=judge.identity(),
    bootstrap_samples=snakemake.params.bootstrap_samples,
    seed=snakemake.params.seed,
    usage=judge.usage(),
)
io.write_json(snakemake.output.metrics, metrics)
job.finish(snakemake)
