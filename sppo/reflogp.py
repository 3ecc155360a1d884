"""Stage reflogp: the reference policy's summed response log-probabilities of every response trained on.

Computed once per iteration and stored with the pairs (``ref_logps``: chosen, rejected; or the K
samples with train.responses all), so that training holds one model only (the authors ran the
reference model beside the policy on every step). The reference is π_{t−1} (train.reference
previous, the authors') or π_0 (base). The batching and the token accounting are the ones training
uses (sppo/logprobs.py), so at the first step of training log πθ − log π_ref is 0 up to float
rounding when the reference is π_{t−1}.
"""

from __future__ import annotations

import logging
import time

import torch

from sppo import job
from sppo.logprobs import collate_groups, encode_rows, response_logps

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
    responses: str,
    batch_size: int,
    logprob_chunk: int | None = None,
) -> list[dict]:
    """``rows`` with ``ref_logps`` added: one per response trained on (sppo.logprobs.response_texts)."""
    groups, cut = encode_rows(tokenizer, rows, max_length, max_prompt_length, truncation, responses)
    log.info("cut %d prompts and %d responses to fit the length limits", cut["prompts"], cut["responses"])
    out, started = [], time.monotonic()
    for start in range(0, len(rows), batch_size):
        stop = start + batch_size
        batch = collate_groups(groups[start:stop], tokenizer.pad_token_id)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        n, m = batch["tokens"].shape
        logps = response_logps(model, batch, logprob_chunk).view(m, n).T.tolist()
        for row, ref in zip(rows[start:stop], logps, strict=True):
            out.append({**row, "ref_logps": ref})
        job.progress(log, "reference log-probs of", len(out), len(rows), "prompts", started)
    return out
