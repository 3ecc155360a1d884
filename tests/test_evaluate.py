"""The evaluate stage's numbers: soft preferences, bootstrap interval, alpaca-eval's LC win rate."""

import math

import numpy as np
import pytest

from sppo import evaluate
from sppo.judges.synthetic import SyntheticJudge, quality


def test_synthetic_quality_ignores_length():
    preferred = frozenset("abc ")
    assert quality("ab!?", preferred) == 0.5
    assert quality("ab!?" * 10, preferred) == 0.5  # longer, same quality
    assert quality("", preferred) == 0.0


def test_synthetic_judge_is_bradley_terry_on_quality():
    judge = SyntheticJudge(sharpness=4.0, preferred="ab")
    verdict = judge.judge(["x"], [["ab", "a!", "!!"]])  # q = 1, 0.5, 0
    assert np.allclose(verdict.logits[0], 4.0 * np.array([[0, 0.5, 1], [-0.5, 0, 0.5], [-1, -0.5, 0]]))
    # s_i = 2λ(q_i − q̄) = 8 · (0.5, 0, −0.5)
    assert np.allclose(verdict.scores[0], [4.0, 0.0, -4.0])


def test_preferences_are_soft_and_symmetric():
    judge = SyntheticJudge(sharpness=2.0, preferred="a")
    p = evaluate.preferences(judge, ["x", "y", "z"], ["aa", "a!", "a"], ["a!", "aa", "a"])
    # q: (1 vs 0.5), (0.5 vs 1), (1 vs 1) → σ(2·0.5), σ(−1), 0.5
    assert p == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1)), 0.5])


def test_bootstrap_interval_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.uniform(0.4, 1.0, size=20)
    large = rng.uniform(0.4, 1.0, size=2000)
    lo_s, hi_s = evaluate.bootstrap_interval(small, 2000, seed=1)
    lo_l, hi_l = evaluate.bootstrap_interval(large, 2000, seed=1)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < hi_s - lo_s
    assert evaluate.bootstrap_interval(np.full(10, 0.5), 500, seed=0) == (0.5, 0.5)
    assert evaluate.bootstrap_interval(small, 2000, seed=1) == (lo_s, hi_s)  # seeded


def test_length_controlled_winrate_from_the_library():
    rng = np.random.default_rng(0)
    n = 60
    prompts = [f"q{i}" for i in range(n)]
    base = ["b" * int(rng.integers(10, 40)) for _ in range(n)]
    # The model wins exactly when it is longer: the GLM attributes the wins to length,
    # so the length-controlled win rate falls well below the raw one.
    outputs = ["m" * (len(b) + int(rng.integers(-20, 30))) for b in base]
    p = np.array([0.9 if len(o) > len(b) else 0.1 for o, b in zip(outputs, base, strict=True)])
    lc = evaluate.length_controlled_winrate(prompts, outputs, base, p, "model", "base")
    assert 0 < lc < p.mean() - 0.1
    assert evaluate.length_controlled_winrate(prompts, base, base, np.full(n, 0.5), "base", "base") == 0.5


def test_metrics_and_alpaca_eval_export():
    judge = SyntheticJudge()
    rows = [{"id": str(i), "prompt": f"q{i}", "output": "plain words" + "!" * (i % 3)} for i in range(30)]
    base = [{"id": str(i), "prompt": f"q{i}", "output": "??" + "x" * i} for i in range(30)]
    m = evaluate.metrics(judge, rows, base, model="m", base="b", bootstrap_samples=500, seed=0)
    assert m["n_prompts"] == 30 and m["win_rate"] > 0.5
    assert m["win_rate_ci95"][0] <= m["win_rate"] <= m["win_rate_ci95"][1]
    assert m["wins"] + m["ties"] + m["losses"] == 30
    assert m["mean_length"] == pytest.approx(np.mean([len(r["output"]) for r in rows]))
    assert m["judge"]["name"] == "synthetic" and m["lc_win_rate"] is not None
    export = evaluate.alpaca_eval_outputs(rows, "m")
    assert export[0] == {"instruction": "q0", "output": "plain words", "generator": "m"}
    with pytest.raises(ValueError, match="no baseline answer"):
        evaluate.metrics(judge, rows, base[:-1], model="m", base="b", bootstrap_samples=500, seed=0)
