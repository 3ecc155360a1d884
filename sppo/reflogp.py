"""Stage reflogp: π_{t−1}'s summed response log-probabilities of every chosen and rejected response.

Computed once per iteration and stored with the pairs, so that training holds one model only
(the reference ran the reference model beside the policy on every step). The batching and the
token accounting are the ones training uses (:func:`collate`, :func:`sequence_logps`), so at the
first step of training log πθ − log π_ref is 0 up to float rounding.
"""

from __future__ import annotations

import logging
import time

import torch

from sppo.chat import EncodedPair, encode_response, truncate

log = logging.getLogger(__name__)

IGNORE = -100


def collate(pairs: list[EncodedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (IGNORE outside the response tokens)."""
    width = max(len(p.input_ids) for p in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    labels = torch.full((len(pairs), width), IGNORE, dtype=torch.long)
    for i, p in enumerate(pairs):
        n, start = len(p.input_ids), len(p.prompt_ids)
        ids[i, :n] = torch.tensor(p.input_ids)
        mask[i, :n] = 1
        labels[i, start:n] = torch.tensor(p.response_ids)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Σ over response tokens of log p(token | prefix): logits at position t predict the label at t+1."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE
    token_logps = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token_logps * mask).sum(-1)


def encode_rows(tokenizer, rows: list[dict], max_length: int, max_prompt_length: int, truncation: str):
    """Encoded chosen and rejected responses of each pair row, cut by the rule ``truncation`` (see
    :func:`sppo.chat.truncate`), and how many prompts and responses were cut."""
    chosen, rejected, cut = [], [], {"prompts": 0, "responses": 0}
    for row in rows:
        sides = [
            encode_response(tokenizer, row["prompt"], row[side][-1]["content"])
            for side in ("chosen", "rejected")
        ]
        c, r = truncate(*sides, max_length, max_prompt_length, truncation)
        for enc, out in ((c, chosen), (r, rejected)):
            cut["prompts"] += enc.prompt_truncated
            cut["responses"] += enc.response_truncated
            out.append(enc)
    return chosen, rejected, cut


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
) -> list[dict]:
    """``rows`` with ``ref_chosen_logp`` and ``ref_rejected_logp`` added."""
    chosen, rejected, cut = encode_rows(tokenizer, rows, max_length, max_prompt_length, truncation)
    log.info("cut %d prompts and %d responses to fit the length limits", cut["prompts"], cut["responses"])
    out, started = [], time.monotonic()
    for start in range(0, len(rows), batch_size):
        stop = start + batch_size
        batch = collate(chosen[start:stop] + rejected[start:stop], tokenizer.pad_token_id)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        logps = sequence_logps(
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            batch["labels"],
        ).tolist()
        n = len(rows[start:stop])
        for row, c, r in zip(rows[start:stop], logps[:n], logps[n:], strict=True):
            out.append({**row, "ref_chosen_logp": c, "ref_rejected_logp": r})
        log.info(
            "reference log-probs of %d/%d pairs (%.1f s)", len(out), len(rows), time.monotonic() - started
        )
    return out
