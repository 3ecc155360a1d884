"""Judges side by side (sppo/report/judges.py): agreement and length bias against numbers computed by
hand on a hand-made annotation set, and two real judges of sppo/judges on the same answers."""

import numpy as np
import pytest

from sppo import evaluate
from sppo.judges.synthetic import SyntheticJudge
from sppo.report import judges


def annotation(i, p, base, out):
    return {"id": f"p{i}", "preference": 1.0 + p, "output_1": base, "output_2": out}


# Four prompts; π_t's answer (output_2) is longer in p0 and p2, shorter in p1, as long in p3.
PAIRS = [("ab", "abcd"), ("abcd", "ab"), ("a", "abc"), ("ab", "cd")]
TRAIN = [annotation(i, p, *pair) for i, (p, pair) in enumerate(zip([0.9, 0.2, 0.5, 0.7], PAIRS, strict=True))]
OTHER = [annotation(i, p, *pair) for i, (p, pair) in enumerate(zip([0.6, 0.4, 0.1, 0.3], PAIRS, strict=True))]


def test_agreement_by_hand():
    # sides: train +1 −1 0 +1; other +1 −1 −1 −1 → equal on p0, p1: 2/4
    agree, corr = judges.agreement(TRAIN, OTHER)
    assert agree == 0.5
    # Pearson by hand: x = (.9 .2 .5 .7), mean .575, dev (.325 −.375 −.075 .125);
    # y = (.6 .4 .1 .3), mean .35, dev (.25 .05 −.25 −.05);
    # Σdxdy = .08125 − .01875 + .01875 − .00625 = .075; Σdx² = .2675; Σdy² = .13
    expected = 0.075 / np.sqrt(0.2675 * 0.13)
    assert corr == pytest.approx(expected, rel=1e-12)  # a few float roundings of 4-term sums


def test_length_bias_by_hand():
    # p0: π_t longer, p = .9 → .9; p1: π_0 longer, p = .2 → .8; p2: π_t longer, p = .5 → .5; p3 equal
    longer, corr = judges.length_bias(TRAIN)
    assert longer == pytest.approx((0.9 + 0.8 + 0.5) / 3, rel=1e-12)
    # length differences d = (2, −2, 2, 0), mean .5, dev (1.5 −2.5 1.5 −.5); p dev as above:
    # Σ = .4875 + .9375 − .1125 − .0625 = 1.25; Σd² = 2.25 + 6.25 + 2.25 + .25 = 11
    assert corr == pytest.approx(1.25 / np.sqrt(0.2675 * 11), rel=1e-12)


def test_undefined_correlations_are_empty():
    constant = [annotation(i, 0.5, *pair) for i, pair in enumerate(PAIRS)]
    assert judges.agreement(TRAIN, constant) == (0.25, None)  # only p2 is a tie for both
    assert judges.length_bias([annotation(0, 0.7, "ab", "ab")]) == (None, None)
    with pytest.raises(ValueError, match="different prompts"):
        judges.agreement(TRAIN, OTHER[:3])


def test_two_real_judges_on_the_same_answers(tmp_path):
    """Two synthetic judges that value different characters, through evaluate.annotate/metrics and the
    table: the rows carry each judge's own win rate, and the agreement is that of their verdicts."""
    # six prompts: alpaca-eval's LC GLM (in evaluate.metrics) cross-validates over five folds
    base_outputs = ["abc", "ABC", "a1", "zz", "hello", "x"]
    outputs = ["ABCD", "abc", "a", "zz!", "HELLO", "xy"]
    base = [{"id": f"p{i}", "prompt": f"q{i}", "output": o} for i, o in enumerate(base_outputs)]
    rows = [{"id": f"p{i}", "prompt": f"q{i}", "output": o} for i, o in enumerate(outputs)]
    lower, upper = SyntheticJudge(), SyntheticJudge(preferred="ABCDEFGHIJKLMNOPQRSTUVWXYZ!")
    entries = []
    for judge in (lower, upper):
        ann = evaluate.annotate(judge, rows, base, model="m1", base="m0")
        m = evaluate.metrics(ann, judge=judge.identity(), bootstrap_samples=100, seed=0)
        entries.append({"variant": "", "iteration": 1, "annotations": ann, "metrics": m})
    entries[0]["judge"], entries[1]["judge"] = "train_judge", "other_judge"
    df = judges.table(entries, train="train_judge", eval_="train_judge")
    assert list(df["role"]) == ["train+eval", "extra"] and "variant" not in df
    # quality q = share of preferred characters, q(π_t) vs q(π_0) per prompt. Lower-case judge:
    # p0 0 < 1 (π_0), p1 1 > 0 (π_t), p2 1 > .5 (π_t), p3 2/3 < 1 (π_0), p4 0 < 1 (π_0), p5 1 = 1 (tie);
    # upper-case judge: p0 π_t, p1 π_0, p2 0 = 0 (tie), p3 1/3 > 0 (π_t), p4 π_t, p5 0 = 0 (tie):
    # the same side only on p5
    assert df["agreement_with_train"].iloc[1] == pytest.approx(1 / 6, abs=1e-15)
    assert np.isnan(df["agreement_with_train"].iloc[0])  # the training judge against itself: empty
    assert df["win_rate"].tolist() == [entries[0]["metrics"]["win_rate"], entries[1]["metrics"]["win_rate"]]
    # the longer answer: p0 π_t, p2 π_0, p3 π_t, p5 π_t (p1, p4 as long): the lower-case judge prefers
    # the shorter on p0, p2, p3 (tie on p5), the upper-case one the longer on p0, p3 (ties on p2, p5)
    assert df["longer_preference"].iloc[0] < 0.5 < df["longer_preference"].iloc[1]
    judges.plot(df, str(tmp_path / "judges.png"))
    assert (tmp_path / "judges.png").stat().st_size > 0
    assert "<table" in judges.to_html(df)


def test_summary_table_gains_the_alpaca_eval_columns():
    """summary.table with AlpacaEval's metrics of π_0 and π_1: one column each for the win rate and
    the LC win rate, on the row of the π_t they belong to."""
    from sppo import summary

    def metrics(t):
        return {
            "model": f"m{t}",
            "n_prompts": 4,
            "win_rate": 0.5 + t / 10,
            "win_rate_ci95": [0.4, 0.6],
            "lc_win_rate": 0.5,
            "mean_length": 10.0,
        }

    alpaca = [{"win_rate": 0.2, "lc_win_rate": 0.25}, {"win_rate": 0.3, "lc_win_rate": 0.35}]
    df = summary.table({"": [metrics(0), metrics(1)]}, None, {"": alpaca})
    assert df["alpaca_eval_win_rate"].tolist() == [0.2, 0.3]
    assert df["alpaca_eval_lc_win_rate"].tolist() == [0.25, 0.35]
    assert "alpaca_eval_win_rate" not in summary.table({"": [metrics(0), metrics(1)]})
