"""The summary across iterations: one table row and one plot point per π_t (of each variant, side by
side, when the config names variants)."""

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


def by_variant(items: list, names: list[str], iterations: int) -> dict[str, list]:
    """Per-π_t files of π_0 then each variant's π_1 … π_T (rule summary's input order) as
    name → [π_0, π_1, …, π_T] (π_0, shared, starts every variant)."""
    if len(items) != 1 + len(names) * iterations:
        raise ValueError(f"{len(items)} files for π_0 and {len(names)} variants × {iterations} iterations")
    return {
        name: [items[0], *items[1 + i * iterations : 1 + (i + 1) * iterations]]
        for i, name in enumerate(names)
    }


def table(
    series: dict[str, list[dict]],
    leaderboard: dict[str, list[dict]] | None = None,
    alpaca: dict[str, list[dict]] | None = None,
) -> pd.DataFrame:
    """One row per π_t of each variant (name → metrics of π_0 … π_T); with ``leaderboard``
    (results.json per π_t, likewise) also its normalised benchmark scores, with ``alpaca``
    (AlpacaEval's metrics.json per π_t) its AlpacaEval win rate and LC win rate against the
    reference outputs. A first column ``variant`` when the variants have names (a config with
    variants), none for one run ("")."""
    frames = []
    for name, metrics in series.items():
        df = _table(metrics, (leaderboard or {}).get(name))
        if alpaca:
            df["alpaca_eval_win_rate"] = [m["win_rate"] for m in alpaca[name]]
            df["alpaca_eval_lc_win_rate"] = [m["lc_win_rate"] for m in alpaca[name]]
        if name:
            df.insert(0, "variant", name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _table(metrics: list[dict], leaderboard: list[dict] | None) -> pd.DataFrame:
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


def to_html(df: pd.DataFrame) -> str:
    """The table as a page of its own, for ``snakemake --report`` (which shows HTML, not a TSV): the
    same rows and numbers as metrics.tsv, to 4 decimals."""
    style = "body{font-family:sans-serif;font-size:13px} td,th{padding:2px 8px;text-align:right}"
    table = df.to_html(index=False, float_format=lambda x: f"{x:.4f}", border=0, na_rep="")
    return (
        f"<!DOCTYPE html><html><head><meta charset=utf-8><title>Summary</title><style>{style}</style>"
        f"</head><body><h1>Win rate of each π_t against π_0</h1>{table}</body></html>\n"
    )


def plot(df: pd.DataFrame, path: str) -> None:
    """Win rate against π_0 per iteration, its 95% interval and the LC win rate (one colour per
    variant when there are several); benchmark scores beside."""
    benchmarks = [c for c in df.columns if c.startswith("leaderboard_")]
    fig, axes = plt.subplots(1, 2 if benchmarks else 1, figsize=(10 if benchmarks else 5, 3.5), dpi=120)
    ax = axes[0] if benchmarks else axes
    groups = list(df.groupby("variant", sort=False)) if "variant" in df else [("", df)]
    for i, (name, part) in enumerate(groups):
        color = f"C{i}" if len(groups) > 1 else None  # one run: the default colours
        label = f"{name}: " if name else ""
        err = [part["win_rate"] - part["ci95_low"], part["ci95_high"] - part["win_rate"]]
        ax.errorbar(
            part["iteration"],
            part["win_rate"],
            yerr=err,
            marker="o",
            capsize=4,
            color=color,
            label=f"{label}win rate (95% CI)",
        )
        if part["lc_win_rate"].notna().any():
            ax.plot(
                part["iteration"],
                part["lc_win_rate"],
                marker="s",
                linestyle="--",
                color=color,
                label=f"{label}LC win rate",
            )
    ax.axhline(0.5, color="grey", linewidth=0.8)
    ax.set_xticks(sorted(df["iteration"].unique()))
    ax.set_xlabel("SPPO iteration t")
    ax.set_ylabel("judge win rate of π_t over π_0")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize="small" if len(groups) > 1 else None)
    if benchmarks:
        _plot_leaderboard(axes[1], df, benchmarks)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def plot_length(df: pd.DataFrame, path: str) -> None:
    """Mean answer length against the win rate over π_0, a point per π_t labelled t, a line per variant."""
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    groups = list(df.groupby("variant", sort=False)) if "variant" in df else [("", df)]
    for i, (name, part) in enumerate(groups):
        ax.plot(part["mean_length"], part["win_rate"], marker="o", color=f"C{i}", label=name or None)
        for t, x, y in zip(part["iteration"], part["mean_length"], part["win_rate"], strict=True):
            ax.annotate(f"π_{t}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize="small")
    ax.axhline(0.5, color="grey", linewidth=0.8)
    ax.set_xlabel("mean answer length (characters)")
    ax.set_ylabel("judge win rate of π_t over π_0")
    ax.set_ylim(0, 1)
    if len(groups) > 1:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def _plot_leaderboard(ax, df: pd.DataFrame, columns: list[str]) -> None:
    """Normalised benchmark scores (0 = random guessing, 100 = perfect) per iteration; the average
    bold (with variants: the average of each)."""
    if "variant" in df:
        lines = [
            (f"{name}: average", part, "leaderboard_average")
            for name, part in df.groupby("variant", sort=False)
        ]
    else:
        lines = [(column.removeprefix("leaderboard_"), df, column) for column in columns]
    for label, part, column in lines:
        average = column == "leaderboard_average" and "variant" not in df
        ax.plot(
            part["iteration"],
            part[column],
            marker="o",
            linewidth=2.5 if average else 1,
            color="black" if average else None,
            label=label,
        )
    ax.set_xticks(sorted(df["iteration"].unique()))
    ax.set_xlabel("SPPO iteration t")
    ax.set_ylabel("benchmark score (0 random, 100 perfect)")
    ax.set_ylim(0, 100)
    ax.legend(loc="best", fontsize="small")
