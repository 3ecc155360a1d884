"""Stage rank: the judge's verdict on the K responses of every prompt of a shard.

Each output row keeps the prompt, its responses, the judge's per-response ``scores`` and the full
ordered K×K ``logits`` matrix (logits[i][j] > 0: response i beats j).
"""

from __future__ import annotations

import logging
import time

from sppo.judges import Judge

log = logging.getLogger(__name__)


def rank_rows(judge: Judge, rows: list[dict], chunk_prompts: int) -> tuple[list[dict], dict[str, int]]:
    """Judge ``rows`` ({id, prompt, responses}) ``chunk_prompts`` at a time (the judge batches within
    a chunk; progress is logged after each); return the ranked rows and truncation counts."""
    out, truncated, started = [], {}, time.monotonic()
    for start in range(0, len(rows), chunk_prompts):
        chunk = rows[start : start + chunk_prompts]
        verdict = judge.judge([r["prompt"] for r in chunk], [r["responses"] for r in chunk])
        for key, n in verdict.truncated.items():
            truncated[key] = truncated.get(key, 0) + n
        for row, scores, logits in zip(chunk, verdict.scores, verdict.logits, strict=True):
            out.append({**row, "scores": scores.tolist(), "logits": logits.tolist()})
        log.info("ranked %d/%d prompts (%.1f s)", len(out), len(rows), time.monotonic() - started)
    return out, truncated
