"""Stage reflogp: the reference policy's summed response log-probabilities of every response trained on.

Computed once per iteration and stored with the pairs (``ref_logps``: chosen, rejected; or the K
samples with train.responses all), so that training holds one model only (the authors ran the
reference model beside the policy on every step). The reference is π_{t−1} (train.reference
previous, the authors') or π_0 (base). The batching and the token accounting are the ones training
uses (sppo/logprobs.py), so at the first step of training log πθ − log π_ref is 0 up to float
rounding when the reference is π_{t−1}.

The pairs are split into ``shards`` jobs (one GPU each) of whole batches of
train.per_device_batch_size rows (:func:`shard_rows`), so every row is batched with the same rows
whatever the shard count, and the merged rows (:func:`merge`, which train reads) do not depend on it.
"""

from __future__ import annotations

import logging
import time

import torch

from sppo import generate, job
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
    packing: bool = False,
) -> list[dict]:
    """``rows`` with ``ref_logps`` added: one per response trained on (sppo.logprobs.response_texts)."""
    groups, cut = encode_rows(tokenizer, rows, max_length, max_prompt_length, truncation, responses)
    log.info("cut %d prompts and %d responses to fit the length limits", cut["prompts"], cut["responses"])
    out, started = [], time.monotonic()
    for start in range(0, len(rows), batch_size):
        stop = start + batch_size
        batch = collate_groups(groups[start:stop], tokenizer.pad_token_id, packing)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        n, m = batch["tokens"].shape
        logps = response_logps(model, batch, logprob_chunk).view(m, n).T.tolist()
        for row, ref in zip(rows[start:stop], logps, strict=True):
            out.append({**row, "ref_logps": ref})
        job.progress(log, "reference log-probs of", len(out), len(rows), "prompts", started)
    return out


def shard_rows(rows: list[dict], shard: int, shards: int, batch_size: int) -> list[dict]:
    """The rows of shard ``shard`` of ``shards``: a contiguous run of whole batches of ``batch_size``
    (as generate shards prompts), so :func:`compute` forms the same batches in any shard count."""
    return [row for _, batch in generate.shard_rows(rows, shard, shards, batch_size) for row in batch]


def merge(pairs: list[dict], shards: list[list[dict]]) -> list[dict]:
    """The shards' rows in shard order, checked to be ``pairs`` (the winprob rows, in order), each
    with its reference log-probs: a shard computed from other pairs fails here, not in training."""
    merged = [row for shard in shards for row in shard]
    ids, expected = [row["id"] for row in merged], [row["id"] for row in pairs]
    if ids != expected:
        raise ValueError(
            f"the {len(shards)} reference log-prob shards hold {len(ids)} rows, not the "
            f"{len(expected)} pairs in their order; a shard was computed from other pairs or shard count"
        )
    missing = [row["id"] for row in merged if "ref_logps" not in row]
    if missing:
        raise ValueError(f"pairs {missing[:5]} have no reference log-probs")
    return merged
