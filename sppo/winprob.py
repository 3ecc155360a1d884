"""Stage winprob: win probabilities and the (chosen, rejected) pair of every prompt.

As the reference computes them, from the judge's per-response scores s:

    P_ij = σ(s_i − s_j)                   (diagonal 0.5)
    P̂_i  = (1/K) Σ_j P_ij                 (self term included: P̂ ∈ [1/(2K), 1 − 1/(2K)])
    chosen = argmax_i s_i, rejected = argmin_i s_i   (first index on ties)

With ``source: matrix`` the pairwise matrix comes from the judge's own logits instead,
P_ij = σ((M_ij − M_ji) / 2), the probability the judge itself gives for the ordered pair
(the reference's σ(s_i − s_j) mixes in every other candidate through the scores' means), and
chosen and rejected are the responses with the highest and lowest P̂.

With ``winprob.drop_truncated`` the responses cut at the length limit (finish reason "length") are
left out first, as if never drawn: all of the above runs on the complete responses C alone (P̂ is
the mean over C), and a prompt with |C| < 2 gives no pair. ``chosen_index``/``rejected_index`` stay
positions among the K samples; ``responses`` and ``win_rates`` list C's (``response_indices``).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # σ(x) without overflow for large |x|


def from_scores(scores) -> np.ndarray:
    """P_ij = σ(s_i − s_j)."""
    s = np.asarray(scores, dtype=np.float64)
    return sigmoid(s[:, None] - s[None, :])


def from_logits(logits) -> np.ndarray:
    """P_ij = σ((M_ij − M_ji) / 2); the diagonal is 0.5."""
    m = np.asarray(logits, dtype=np.float64)
    return sigmoid((m - m.T) / 2.0)


def complete(row: dict) -> list[int]:
    """Positions of the responses of ``row`` that were not cut at the length limit."""
    return [i for i, reason in enumerate(row["finish_reasons"]) if reason != "length"]


def pair_complete(row: dict, source: str = "scores") -> dict | None:
    """:func:`pair` of ``row``'s complete responses only (None where fewer than two are complete),
    its indices those among the K samples."""
    kept = complete(row)
    if len(kept) < 2:
        return None
    logits = np.asarray(row["logits"], dtype=np.float64)[np.ix_(kept, kept)]
    sub = {
        **row,
        "responses": [row["responses"][i] for i in kept],
        "scores": [row["scores"][i] for i in kept],
        "logits": logits.tolist(),
    }
    out = pair(sub, source)
    out["chosen_index"], out["rejected_index"] = kept[out["chosen_index"]], kept[out["rejected_index"]]
    out["response_indices"] = kept
    return out


def pair(row: dict, source: str = "scores") -> dict:
    """The TRL-style pair of a ranked row, with the win probabilities of the reference (and, for
    train.responses all, every response with its win rate P̂)."""
    probs = from_scores(row["scores"]) if source == "scores" else from_logits(row["logits"])
    win_rate = probs.mean(axis=1)
    # The reference picks by score; from the matrix, by the matrix's own win rate.
    key = np.asarray(row["scores"], dtype=np.float64) if source == "scores" else win_rate
    win, lose = int(np.argmax(key)), int(np.argmin(key))
    user = {"role": "user", "content": row["prompt"]}
    return {
        "id": row["id"],
        "prompt": row["prompt"],
        "chosen": [user, {"role": "assistant", "content": row["responses"][win]}],
        "rejected": [user, {"role": "assistant", "content": row["responses"][lose]}],
        "chosen_index": win,
        "rejected_index": lose,
        "chosen_probs": float(probs[win, lose]),
        "chosen_probs_win": float(win_rate[win]),
        "chosen_probs_lose": float(win_rate[lose]),
        "responses": list(row["responses"]),
        "win_rates": win_rate.tolist(),
        "probs": probs.tolist(),
    }


def pairs(ranked: list[dict], source: str = "scores", drop_truncated: bool = False) -> list[dict]:
    """The pairs of an iteration's ranked rows: :func:`pair` of each, or with ``drop_truncated``
    :func:`pair_complete` of each that has two complete responses (an error where none has)."""
    if not drop_truncated:
        return [pair(row, source) for row in ranked]
    out = [p for p in (pair_complete(row, source) for row in ranked) if p is not None]
    log.info(
        "winprob.drop_truncated: %d responses cut at the length limit left out; %d prompts with fewer "
        "than two complete responses give no pair",
        sum(len(row["responses"]) - len(complete(row)) for row in ranked),
        len(ranked) - len(out),
    )
    if ranked and not out:
        raise ValueError(
            "winprob.drop_truncated: no prompt has two complete responses, so there is no pair to "
            "train on; raise generate.max_new_tokens or set winprob.drop_truncated: false"
        )
    return out
