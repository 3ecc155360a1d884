"""Win probabilities and pairs against numbers computed by hand."""

import math

import numpy as np
import pytest

from sppo import winprob


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_from_scores_matches_hand_computation():
    p = winprob.from_scores([1.0, 0.0, -1.0])
    # σ(1) = 0.7310585786, σ(2) = 0.8807970780
    assert p[0, 1] == pytest.approx(0.7310585786, abs=1e-10)
    assert p[0, 2] == pytest.approx(0.8807970780, abs=1e-10)
    assert p[2, 0] == pytest.approx(0.1192029220, abs=1e-10)
    assert np.all(np.diag(p) == 0.5)
    assert np.allclose(p + p.T, 1.0)


def test_pair_reference_columns():
    row = {
        "id": "x",
        "prompt": "Say hi",
        "responses": ["a", "b", "c"],
        "scores": [1.0, 0.0, -1.0],
        "logits": np.zeros((3, 3)).tolist(),
    }
    pair = winprob.pair(row)
    # P̂_0 = (0.5 + σ(1) + σ(2)) / 3, P̂_2 = (σ(-2) + σ(-1) + 0.5) / 3
    assert pair["chosen_probs_win"] == pytest.approx((0.5 + 0.7310585786 + 0.8807970780) / 3, abs=1e-9)
    assert pair["chosen_probs_win"] == pytest.approx(0.7039518855, abs=1e-9)
    assert pair["chosen_probs_lose"] == pytest.approx(0.2960481145, abs=1e-9)
    assert pair["chosen_probs"] == pytest.approx(0.8807970780, abs=1e-9)
    assert pair["chosen"] == [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "a"}]
    assert pair["rejected"][-1] == {"role": "assistant", "content": "c"}
    assert (pair["chosen_index"], pair["rejected_index"]) == (0, 2)


def test_win_rates_bounded_by_self_term():
    k = 5
    pair = winprob.pair(
        {
            "id": "x",
            "prompt": "p",
            "responses": list("abcde"),
            "scores": [100, -100, -100, -100, -100],
            "logits": np.zeros((k, k)).tolist(),
        }
    )
    # The self term caps P̂ at 1 − 1/(2K) = 0.9 and floors it at 1/(2K) = 0.1.
    assert pair["chosen_probs_win"] == pytest.approx(0.9, abs=1e-12)
    assert min(pair["win_rates"]) >= 0.1 - 1e-12


def test_ties_pick_first_index():
    pair = winprob.pair(
        {
            "id": "x",
            "prompt": "p",
            "responses": ["a", "b", "c"],
            "scores": [0.5, 0.5, 0.5],
            "logits": np.zeros((3, 3)).tolist(),
        }
    )
    assert (pair["chosen_index"], pair["rejected_index"]) == (0, 0)
    assert pair["chosen_probs"] == 0.5


def test_from_logits_uses_antisymmetrised_matrix():
    m = np.array([[0.0, 2.0, 1.0], [-1.0, 0.0, 3.0], [0.0, -2.0, 0.0]])
    p = winprob.from_logits(m)
    assert p[0, 1] == pytest.approx(sig((2.0 - (-1.0)) / 2), abs=1e-12)
    assert p[1, 2] == pytest.approx(sig((3.0 - (-2.0)) / 2), abs=1e-12)
    assert np.all(np.diag(p) == 0.5)
    pair = winprob.pair(
        {"id": "x", "prompt": "p", "responses": list("abc"), "scores": [0, 0, 0], "logits": m.tolist()},
        source="matrix",
    )
    # Row means: P̂_0 = (0.5 + σ(1.5) + σ(0.5)) / 3 = 0.6467, P̂_1 = (σ(−1.5) + 0.5 + σ(2.5)) / 3 = 0.5355,
    # P̂_2 = (σ(−0.5) + σ(−2.5) + 0.5) / 3 = 0.3178 — the scores (all 0) play no part.
    assert pair["chosen_index"] == 0 and pair["rejected_index"] == 2
    assert pair["chosen_probs_win"] == pytest.approx((0.5 + sig(1.5) + sig(0.5)) / 3, abs=1e-12)
    assert pair["chosen_probs_win"] == pytest.approx(0.6467, abs=1e-4)
    assert pair["chosen_probs_lose"] == pytest.approx(0.3178, abs=1e-4)
