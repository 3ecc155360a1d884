"""Judge the K responses of every prompt of one shard. Run by rule rank."""

from pathlib import Path

from sppo import io, job, rank
from sppo.judges import load_judge

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)

# An llm judge's request cache lives beside the outputs, undeclared, so a failed job keeps it.
cache = Path(snakemake.output.ranked).with_suffix(".llm_judge_cache.jsonl")
judge = load_judge(snakemake.params.judge, "train", cache_path=cache)
identity = judge.identity()  # hashes the judge's weights: once
log.info("judge: %s", identity)
prompt = snakemake.params.prompt
tokenizer = None
if prompt["text"] == "chat_template":
    from sppo import models  # torch and transformers: only when a tokenizer is needed

    tokenizer = models.load_tokenizer(prompt["tokenizer"], prompt)
    log.info("the judge reads prompts rendered with the chat template of %s", prompt["tokenizer"])
rows, truncated = rank.rank_rows(
    judge,
    io.read_jsonl(snakemake.input.generated, required=["id", "prompt", "responses"]),
    snakemake.params.chunk_prompts,
    tokenizer,
)
log.info("inputs cut to the judge's length limits: %s", truncated or "none")
io.write_jsonl(snakemake.output.ranked, rows)
io.write_json(
    snakemake.output.judge,
    {"judge": identity, "prompt_text": prompt["text"], "truncated": truncated, "usage": judge.usage()},
)
job.finish(snakemake)
