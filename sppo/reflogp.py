"""Stage reflogp: π_{t−1}'s summed response log-probabilities of every chosen and rejected response.

Computed once per iteration and stored with the pairs, so that training holds one model only
(the reference ran the reference model beside the policy on every step). The batching and the
token accounting are the ones training uses (sppo/logprobs.py), so at the first step of training
log πθ − log π_ref is 0 up to float rounding.
"""

from __future__ import annotations

import logging
import time

import torch

from sppo.logprobs import collate, encode_rows, response_logps

log = logging.getLogger(__name__)


@torch.inference_mode()
def compute(
    model,
    tokenizer,
    rows: list[dict],
    *,
    max_length: int,
    max_prompt_length: int,
    truncation: str,
    batch_size: int,
    logprob_chunk: int | None = None,
) -> list[dict]:
    """``rows`` with ``ref_chosen_logp`` and ``ref_rejected_logp`` added."""
    chosen, rejected, cut = encode_rows(tokenizer, rows, max_length, max_prompt_length, truncation)
    log.info("cut %d prompts and %d responses to fit the length limits", cut["prompts"], cut["responses"])
    out, started = [], time.monotonic()
    for start in range(0, len(rows), batch_size):
        stop = start + batch_size
        batch = collate(chosen[start:stop] + rejected[start:stop], tokenizer.pad_token_id)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        logps = response_logps(model, batch, logprob_chunk).tolist()
        n = len(rows[start:stop])
        for row, c, r in zip(rows[start:stop], logps[:n], logps[n:], strict=True):
            out.append({**row, "ref_chosen_logp": c, "ref_rejected_logp": r})
        log.info(
            "reference log-probs of %d/%d pairs (%.1f s)", len(out), len(rows), time.monotonic() - started
        )
    return out
