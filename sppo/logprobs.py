"""Encoded pairs as model batches, and summed response log-probabilities.

The token accounting that the reflogp stage (π_{t−1}) and training (πθ) share, so that at the
first training step log πθ − log π_ref is 0 up to float rounding:

    log π(y|x) = Σ over the response tokens y_i of log π(y_i | x, y_<i)

The prompt's tokens (the assistant header included) and the padding are labelled IGNORE and
never counted.
"""

from __future__ import annotations

import torch

from sppo.chat import EncodedPair, encode_response, truncate

IGNORE = -100


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
