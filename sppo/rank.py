"""Stage rank: the judge's verdict on the K responses of every prompt of a shard.

Each output row keeps the prompt, its responses, the judge's per-response ``scores`` and the full
ordered K×K ``logits`` matrix (logits[i][j] > 0: response i beats j). The judge reads the raw
prompt, or (judge.prompt_text chat_template) the prompt rendered with the chat template of the
policy that wrote the responses, as the authors hand PairRM; the stored ``prompt`` stays raw.
"""

from __future__ import annotations

import logging
import time

from sppo import job
from sppo.chat import render_prompt
from sppo.judges import Judge

log = logging.getLogger(__name__)


def judge_prompts(rows: list[dict], tokenizer=None) -> list[str]:
    """The prompt texts the judge reads: each row's ``prompt`` as it is, or, given the policy's
    ``tokenizer``, rendered by its chat template (one user turn plus the generation prompt)."""
    if tokenizer is None:
        return [r["prompt"] for r in rows]
    return [render_prompt(tokenizer, r["prompt"]) for r in rows]


def rank_rows(
    judge: Judge, rows: list[dict], chunk_prompts: int, tokenizer=None
) -> tuple[list[dict], dict[str, int]]:
    """Judge ``rows`` ({id, prompt, responses}) ``chunk_prompts`` at a time (the judge batches within
    a chunk; progress is logged after each), the prompts as :func:`judge_prompts` gives them; return
    the ranked rows and truncation counts."""
    out, truncated, started = [], {}, time.monotonic()
    for start in range(0, len(rows), chunk_prompts):
        chunk = rows[start : start + chunk_prompts]
        verdict = judge.judge(judge_prompts(chunk, tokenizer), [r["responses"] for r in chunk])
        for key, n in verdict.truncated.items():
            truncated[key] = truncated.get(key, 0) + n
        for row, scores, logits in zip(chunk, verdict.scores, verdict.logits, strict=True):
            out.append({**row, "scores": scores.tolist(), "logits": logits.tolist()})
        job.progress(log, "ranked", len(out), len(rows), "prompts", started)
    return out, truncated
