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


def table(metrics: list[dict], leaderboard: list[dict] | None = None) -> pd.DataFrame:
    """One row per π_t; with ``leaderboard`` (results.json per π_t) also its normalised benchmark scores."""
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
    df = pd.DataFrame(rows, columns=COLUMNS)
    if leaderboard:
        extra = pd.DataFrame(
            [
                {f"leaderboard_{k}": b["normalized"] for k, b in r["benchmarks"].items()}
                | {"leaderboard_average": r["average"]}
                for r in leaderboard
            ]
        )
        df = pd.concat([df, extra], axis=1)
    return df


def plot(df: pd.DataFrame, path: str) -> None:
    """Win rate against π_0 per iteration, its 95% interval and the LC win rate; benchmark scores beside."""
    benchmarks = [c for c in df.columns if c.startswith("leaderboard_")]
    fig, axes = plt.subplots(1, 2 if benchmarks else 1, figsize=(10 if benchmarks else 5, 3.5), dpi=120)
    ax = axes[0] if benchmarks else axes
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
    if benchmarks:
        _plot_leaderboard(axes[1], df, benchmarks)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def _plot_leaderboard(ax, df: pd.DataFrame, columns: list[str]) -> None:
    """Normalised benchmark scores (0 = random guessing, 100 = perfect) per iteration; the average bold."""
    for column in columns:
        average = column == "leaderboard_average"
        ax.plot(
            df["iteration"],
            df[column],
            marker="o",
            linewidth=2.5 if average else 1,
            color="black" if average else None,
            label=column.removeprefix("leaderboard_"),
        )
    ax.set_xticks(df["iteration"])
    ax.set_xlabel("SPPO iteration t")
    ax.set_ylabel("benchmark score (0 random, 100 perfect)")
    ax.set_ylim(0, 100)
    ax.legend(loc="best", fontsize="small")
