"""The summary across iterations: one table row and one plot point per π_t."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

COLUMNS = [
    "iteration",
    "model",
    "n_prompts",
    "win_rate",
    "ci95_low",
    "ci95_high",
    "lc_win_rate",
    "mean_length",
]


def table(metrics: list[dict]) -> pd.DataFrame:
    rows = [
        {
            "iteration": t,
            "model": m["model"],
            "n_prompts": m["n_prompts"],
            "win_rate": m["win_rate"],
            "ci95_low": m["win_rate_ci95"][0],
            "ci95_high": m["win_rate_ci95"][1],
            "lc_win_rate": m["lc_win_rate"],
            "mean_length": m["mean_length"],
        }
        for t, m in enumerate(metrics)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def plot(df: pd.DataFrame, path: str) -> None:
    """Win rate against π_0 per iteration, with its 95% interval and the LC win rate."""
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    err = [df["win_rate"] - df["ci95_low"], df["ci95_high"] - df["win_rate"]]
    ax.errorbar(df["iteration"], df["win_rate"], yerr=err, marker="o", capsize=4, label="win rate (95% CI)")
    if df["lc_win_rate"].notna().any():
        ax.plot(df["iteration"], df["lc_win_rate"], marker="s", linestyle="--", label="LC win rate")
    ax.axhline(0.5, color="grey", linewidth=0.8)
    ax.set_xticks(df["iteration"])
    ax.set_xlabel("SPPO iteration t")
    ax.set_ylabel("judge win rate of π_t over π_0")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
