"""Encoded pairs as model batches, and summed response log-probabilities.

The token accounting that the reflogp stage (π_{t−1}) and training (πθ) share, so that at the
first training step log πθ − log π_ref is 0 up to float rounding:

    log π(y|x) = Σ over the response tokens y_i of log π(y_i | x, y_<i)

The prompt's tokens (the assistant header included) and the padding are labelled IGNORE and
never counted.

:func:`response_logps` computes it from a model without the full-vocabulary logits: the model's
body gives the last hidden states, and the LM head is applied to ``chunk`` response positions at a
time, each token's log-prob taken as logit[label] − logsumexp(logits) in float32. The whole
[batch, length, vocab] logits tensor (and its log_softmax copy) never exists; under autograd each
piece is checkpointed, so backward recomputes one piece's logits at a time instead of keeping them
all. With ``chunk`` 0 or None it is :func:`sequence_logps` of the model's own logits.

Packed batches (train.packing, :func:`collate_packed`): a micro-batch's sequences are concatenated
into one row with no padding, the position ids restarting at 0 for each sequence and no attention
mask or KV cache. transformers (masking_utils.find_packed_sequence_indices) then reads a new sequence wherever
the position ids do not go up by 1 and lets each token attend within its own sequence only (sliding
windows and soft-capping as usual, eager and sdpa alike; flash-attention 2 takes the same position
ids as variable-length sequences). Each sequence's first label is a prompt token (IGNORE), so the
last position of one sequence predicts nothing of the next; ``sequence`` names the sequence of each
position, and the sums are taken per sequence instead of per row.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from sppo.chat import EncodedPair, encode_response, truncate

IGNORE = -100


RESPONSES = ("pair", "all")  # train.responses: which of a prompt's responses are trained on


def response_texts(row: dict, responses: str) -> list[str]:
    """The responses of a winprob row that ``responses`` trains on: chosen and rejected (``pair``)
    or all K samples (``all``)."""
    if responses == "all":
        return list(row["responses"])
    if responses == "pair":
        return [row[side][-1]["content"] for side in ("chosen", "rejected")]
    raise ValueError(f"train.responses: {responses!r} is none of {RESPONSES}")


def encode_rows(
    tokenizer, rows: list[dict], max_length: int, max_prompt_length: int, truncation: str, responses: str
):
    """The encoded responses of each row (see :func:`response_texts`), cut by the rule
    ``truncation`` (see :func:`sppo.chat.truncate`), and how many prompts and responses were cut."""
    groups, cut = [], {"prompts": 0, "responses": 0}
    for row in rows:
        sides = [encode_response(tokenizer, row["prompt"], text) for text in response_texts(row, responses)]
        sides = truncate(sides, max_length, max_prompt_length, truncation)
        for enc in sides:
            cut["prompts"] += enc.prompt_truncated
            cut["responses"] += enc.response_truncated
        groups.append(sides)
    return groups, cut


def collate_groups(
    groups: list[list[EncodedPair]], pad_id: int, packed: bool = False
) -> dict[str, torch.Tensor]:
    """:func:`collate` (or with ``packed`` :func:`collate_packed`) of prompts with m responses
    each, response-major: the first response of every prompt, then the second, … (for pairs: the
    chosen ones, then the rejected ones), so that the n × m summed log-probs reshape with
    ``.view(m, n).T``. Also ``tokens`` [n, m], the response token counts."""
    m = len(groups[0])
    if any(len(g) != m for g in groups):
        raise ValueError(
            f"prompts with different numbers of responses in one batch: {[len(g) for g in groups]}"
        )
    sequences = [g[i] for i in range(m) for g in groups]
    batch = collate_packed(sequences) if packed else collate(sequences, pad_id)
    batch["tokens"] = torch.tensor([[len(side.response_ids) for side in g] for g in groups])
    return batch


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


def collate_packed(pairs: list[EncodedPair]) -> dict[str, torch.Tensor]:
    """The sequences concatenated into one row, no padding (module docstring): input ids, position
    ids restarting at 0 for each sequence, labels (IGNORE outside the response tokens) and
    ``sequence``, the index of the sequence each position belongs to."""
    ids, positions, labels, sequence = [], [], [], []
    for i, p in enumerate(pairs):
        n, start = len(p.input_ids), len(p.prompt_ids)
        if start < 1:  # the previous sequence's last position would predict this one's first token
            raise ValueError(f"sequence {i} has no prompt token; it cannot be packed")
        ids += p.input_ids
        positions += range(n)
        labels += [IGNORE] * start + list(p.response_ids)
        sequence += [i] * n
    return {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        "sequence": torch.tensor([sequence], dtype=torch.long),
    }


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the model is called with: input ids and the attention mask, or for a packed batch the
    position ids and no mask (transformers then attends within each sequence only). No KV cache
    either: transformers looks for packed sequences only when it has none, and an evaluation-mode
    forward creates one unless told not to (then all sequences would attend to all before them)."""
    if "sequence" in batch:
        return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def label_owners(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """([rows, length − 1] the sequence each shifted label belongs to, the number of sequences):
    the row for a padded batch, ``sequence`` for a packed one."""
    labels = batch["labels"][:, 1:]
    if "sequence" in batch:
        owners = batch["sequence"][:, 1:]
        return owners, int(batch["sequence"][:, -1].max()) + 1
    rows = torch.arange(labels.shape[0], device=labels.device)
    return rows.unsqueeze(1).expand_as(labels), labels.shape[0]


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Σ over response tokens of log p(token | prefix): logits at position t predict the label at t+1."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE
    token_logps = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token_logps * mask).sum(-1)


def packed_logps(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """:func:`sequence_logps` of a packed batch: the token log-probs summed per ``sequence``."""
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    logps = logits[:, :-1].float().log_softmax(-1)
    logps = logps.gather(2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    owners, count = label_owners(batch)
    sums = torch.zeros(count, dtype=torch.float32, device=labels.device)
    return sums.index_add(0, owners[mask], logps[mask])


def response_logps(model, batch: dict[str, torch.Tensor], chunk: int | None) -> torch.Tensor:
    """Σ over each sequence's response tokens of log π(token | prefix), float32: one per row of a
    padded batch, one per packed sequence of a packed one; as :func:`sequence_logps` of the model's
    logits; with ``chunk``, from pieces of ``chunk`` response positions (module
    docstring). ``model`` may be wrapped (DDP, DeepSpeed): it is called through its wrapper."""
    if not chunk:
        logits = model(**model_inputs(batch)).logits
        return packed_logps(logits, batch) if "sequence" in batch else sequence_logps(logits, batch["labels"])
    inner = model
    while hasattr(inner, "module"):  # DDP and DeepSpeed engines hold the model as .module
        inner = inner.module
    captured = []
    hook = inner.get_decoder().register_forward_hook(lambda m, a, out: captured.append(out[0]))
    try:
        # The call goes through the wrapper (gradient sync, ZeRO-3 gathering) and computes the
        # logits of the last position only, against which the pieces' head is checked.
        last = model(**model_inputs(batch), logits_to_keep=1)
    finally:
        hook.remove()
    hidden = captured[-1]
    check_head(inner, hidden[:, -1:], last.logits)
    labels = batch["labels"][:, 1:]
    rows, cols = (labels != IGNORE).nonzero(as_tuple=True)
    states, targets = hidden[:, :-1][rows, cols], labels[rows, cols]  # response positions only
    pieces = []
    for start in range(0, len(targets), chunk):
        args = (inner, states[start : start + chunk], targets[start : start + chunk])
        if torch.is_grad_enabled() and states.requires_grad:
            pieces.append(checkpoint(piece_logps, *args, use_reentrant=False, preserve_rng_state=False))
        else:
            pieces.append(piece_logps(*args))
    owners, count = label_owners(batch)
    sums = torch.zeros(count, dtype=torch.float32, device=labels.device)
    return sums.index_add(0, owners[rows, cols], torch.cat(pieces)) if pieces else sums


def head_logits(model, states: torch.Tensor) -> torch.Tensor:
    """The model's logits for last hidden ``states``: its LM head, then Gemma-2's final soft-capping
    cap·tanh(logits/cap) as its forward applies it (in the logits' dtype)."""
    logits = model.get_output_embeddings()(states)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits


def piece_logps(model, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log π(target) = logit[target] − logsumexp(logits), in float32, one token per row of ``states``."""
    logits = head_logits(model, states).float()
    return logits.gather(1, targets.unsqueeze(1)).squeeze(1) - logits.logsumexp(1)


def check_head(model, states: torch.Tensor, logits: torch.Tensor) -> None:
    """A ValueError unless :func:`head_logits` gives the model's own ``logits`` for ``states``: an
    architecture that transforms its logits otherwise must use the full logits (chunk 0)."""
    with torch.no_grad():
        ours, theirs = head_logits(model, states).float(), logits.float()
        tolerance = 1e-2 * (1 + theirs.abs().max())  # one bfloat16 rounding of the largest logit
        if ours.shape != theirs.shape or (ours - theirs).abs().max() > tolerance:
            raise ValueError(
                f"{type(model).__name__}: the LM head applied to the last hidden states does not give "
                "the model's logits; compute log-probs from the full logits (train.logprob_chunk: 0)"
            )
