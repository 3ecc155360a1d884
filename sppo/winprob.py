"""Stage winprob: win probabilities and the (chosen, rejected) pair of every prompt.

As the reference computes them, from the judge's per-response scores s:

    P_ij = σ(s_i − s_j)                   (diagonal 0.5)
    P̂_i  = (1/K) Σ_j P_ij                 (self term included: P̂ ∈ [1/(2K), 1 − 1/(2K)])
    chosen = argmax_i s_i, rejected = argmin_i s_i   (first index on ties)

With ``source: matrix`` the pairwise matrix comes from the judge's own logits instead,
P_ij = σ((M_ij − M_ji) / 2), the probability the judge itself gives for the ordered pair
(the reference's σ(s_i − s_j) mixes in every other candidate through the scores' means), and
chosen and rejected are the responses with the highest and lowest P̂.
"""

from __future__ import annotations

import numpy as np


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
