"""Win probabilities and pairs against numbers computed by hand."""

import math

import numpy as np
import pytest
from conftest import snakemake, write_config

from sppo import io, winprob


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


CUT_ROW = {
    "id": "c",
    "prompt": "Count",
    "responses": ["a", "b", "c", "d"],
    "scores": [3.0, 1.0, 2.0, 0.0],
    "logits": np.zeros((4, 4)).tolist(),
    "finish_reasons": ["length", "stop", "stop", "stop"],
}


def test_cut_responses_are_kept_by_default_and_left_out_with_drop_truncated():
    kept = winprob.pairs([CUT_ROW])[0]
    assert (kept["chosen_index"], kept["rejected_index"]) == (0, 3)  # the cut response wins
    assert "response_indices" not in kept and kept == winprob.pair(CUT_ROW)  # the authors' pair, as before
    dropped = winprob.pairs([CUT_ROW], drop_truncated=True)[0]
    # as if only responses 1, 2, 3 (scores 1, 2, 0) had been drawn: chosen 2, rejected 3
    assert (dropped["chosen_index"], dropped["rejected_index"]) == (2, 3)
    assert dropped["response_indices"] == [1, 2, 3] and dropped["responses"] == ["b", "c", "d"]
    assert dropped["chosen"][1]["content"] == "c" and dropped["rejected"][1]["content"] == "d"
    # P̂ over the three complete responses: P̂_c = (σ(2−1) + ½ + σ(2−0)) / 3, P̂_d = (σ(−1) + σ(−2) + ½) / 3
    assert dropped["chosen_probs_win"] == pytest.approx((sig(1) + 0.5 + sig(2)) / 3, abs=1e-12)
    assert dropped["chosen_probs_lose"] == pytest.approx((sig(-1) + sig(-2) + 0.5) / 3, abs=1e-12)
    assert dropped["chosen_probs"] == pytest.approx(sig(2), abs=1e-12)
    assert dropped["win_rates"][1] == pytest.approx(dropped["chosen_probs_win"], abs=1e-12)


def test_prompts_with_fewer_than_two_complete_responses_give_no_pair():
    one_left = {**CUT_ROW, "id": "one", "finish_reasons": ["length", "length", "stop", "length"]}
    all_cut = {**CUT_ROW, "id": "none", "finish_reasons": ["length"] * 4}
    pairs = winprob.pairs([one_left, CUT_ROW, all_cut], drop_truncated=True)
    assert [p["id"] for p in pairs] == ["c"]
    # kept (the default), every prompt gives its pair, cut responses and all
    assert [p["id"] for p in winprob.pairs([one_left, CUT_ROW, all_cut])] == ["one", "c", "none"]
    # an iteration where no prompt has two complete responses has nothing to train on: an error
    with pytest.raises(ValueError, match="winprob.drop_truncated"):
        winprob.pairs([one_left, all_cut], drop_truncated=True)


def test_drop_truncated_with_the_judge_matrix():
    logits = np.array([[0, 9, 9, 9], [-9, 0, 1, 2], [-9, -1, 0, 3], [-9, -2, -3, 0]], dtype=float)
    row = {**CUT_ROW, "logits": logits.tolist()}
    out = winprob.pair_complete(row, source="matrix")
    # the submatrix of responses 1..3: P_ij = σ((M_ij − M_ji)/2) = σ(M_ij) here (antisymmetric M)
    rates = [(0.5 + sig(1) + sig(2)) / 3, (sig(-1) + 0.5 + sig(3)) / 3, (sig(-2) + sig(-3) + 0.5) / 3]
    assert out["win_rates"] == pytest.approx(rates, abs=1e-12)
    assert (out["chosen_index"], out["rejected_index"]) == (1, 3)


def test_drop_truncated_in_the_default_run(copy_run):
    """The default run (32 new tokens from a random tiny model) cuts most samples; with
    winprob.drop_truncated only the prompts with two complete samples give a pair, of those alone."""
    run = copy_run()
    write_config(run, {"winprob": {"drop_truncated": True}})
    snakemake(run, "results/iter1/winprob/pairs.jsonl")
    ranked = [row for s in range(2) for row in io.read_jsonl(run / f"results/iter1/rank/shard{s}.jsonl")]
    pairs = io.read_jsonl(run / "results/iter1/winprob/pairs.jsonl")
    complete = {row["id"]: winprob.complete(row) for row in ranked}
    assert [p["id"] for p in pairs] == [r["id"] for r in ranked if len(complete[r["id"]]) >= 2]
    assert 0 < len(pairs) < len(ranked)  # some prompts are left without a pair, not all
    for p in pairs:
        assert p["response_indices"] == complete[p["id"]]
        assert {p["chosen_index"], p["rejected_index"]} <= set(complete[p["id"]])
