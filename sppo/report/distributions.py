"""How spread the training signal is in each iteration: the win rates P̂ of the chosen and the
rejected responses (winprob pairs) and the train judge's scores of all K samples (rank shards)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sppo import io
from sppo.report.series import colours, label, save

QUANTITIES = {
    "p_chosen": "P̂ of the chosen",
    "p_rejected": "P̂ of the rejected",
    "judge_score": "judge score (all K samples)",
}
STATS = ["n", "mean", "std", "q05", "q25", "q50", "q75", "q95"]


def values(pairs: str, ranked: list[str]) -> dict[str, np.ndarray]:
    """The per-prompt P̂ of chosen and rejected of a winprob file, and every score of its rank shards."""
    rows = io.read_jsonl(pairs, required=["chosen_probs_win", "chosen_probs_lose"])
    scores = [s for path in ranked for row in io.read_jsonl(path, required=["scores"]) for s in row["scores"]]
    return {
        "p_chosen": np.array([r["chosen_probs_win"] for r in rows], dtype=float),
        "p_rejected": np.array([r["chosen_probs_lose"] for r in rows], dtype=float),
        "judge_score": np.array(scores, dtype=float),
    }


def describe(x: np.ndarray) -> dict:
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    return dict(zip(STATS, [len(x), x.mean(), x.std(), *q], strict=True))


def collect(series: list[tuple[str, int, dict[str, np.ndarray]]]) -> tuple[pd.DataFrame, dict]:
    """The summary table (one row per variant, iteration and quantity) and the values by
    (variant, iteration) for :func:`plot`."""
    rows = [
        {"variant": v, "iteration": t, "quantity": q, **describe(x)}
        for v, t, found in series
        for q, x in found.items()
    ]
    return pd.DataFrame(rows, columns=["variant", "iteration", "quantity", *STATS]), {
        (v, t): found for v, t, found in series
    }


def plot(found: dict, path: str) -> None:
    """Histograms: one column per iteration; P̂ (chosen solid, rejected dashed) above, the judge's
    scores below; one colour per variant."""
    iterations = sorted({t for _, t in found})
    colour = colours(v for v, _ in found)
    fig, axes = plt.subplots(2, len(iterations), figsize=(3.6 * len(iterations), 5.5), dpi=100, squeeze=False)
    for (variant, t), x in found.items():
        top, bottom = axes[0][iterations.index(t)], axes[1][iterations.index(t)]
        for key, style in (("p_chosen", "-"), ("p_rejected", "--")):
            top.hist(
                x[key],
                bins=20,
                range=(0, 1),
                histtype="step",
                linestyle=style,
                color=colour[variant],
                label=label(variant, QUANTITIES[key]),
            )
        bottom.hist(x["judge_score"], bins=30, histtype="step", color=colour[variant], label=label(variant))
        top.set_title(f"iteration {t}: P̂", fontsize="medium")
        bottom.set_title(f"iteration {t}: judge scores", fontsize="medium")
    axes[0][0].set_ylabel("prompts")
    axes[1][0].set_ylabel("samples")
    axes[0][0].legend(fontsize="x-small")
    save(fig, path)
