"""Time and peak memory per stage and iteration, from the Snakemake ``benchmark:`` files
(logs/benchmarks/<stage>/[<variant>/]iter<t>[/shard<s>].tsv; columns s and max_rss in MB)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from sppo.report.series import save

# split and basemodel run once, before iteration 1: iteration 0
PATTERN = re.compile(r"logs/benchmarks/(?P<stage>[^/]+)/(?:(?:(?P<variant>[^/]+)/)?iter(?P<t>\d+))?")


def table(paths: list[str]) -> pd.DataFrame:
    """Per stage, variant and iteration: the jobs, their seconds summed, and the largest peak
    resident memory of one job (MB)."""
    rows = []
    for path in paths:
        found = PATTERN.search(Path(path).as_posix())
        if found is None:
            raise ValueError(f"{path}: not a benchmark file of logs/benchmarks/<stage>/…")
        bench = pd.read_csv(path, sep="\t")
        rows.append(
            {
                "stage": found["stage"],
                "variant": found["variant"] or "",
                "iteration": int(found["t"] or 0),
                "seconds": float(bench["s"].iloc[0]),
                "max_rss_mb": pd.to_numeric(bench["max_rss"], errors="coerce").iloc[0],
            }
        )
    df = pd.DataFrame(rows)
    return (
        df.groupby(["stage", "variant", "iteration"], sort=True)
        .agg(jobs=("seconds", "size"), seconds=("seconds", "sum"), max_rss_mb=("max_rss_mb", "max"))
        .reset_index()
    )


def plot(df: pd.DataFrame, path: str) -> None:
    """Bars per stage: the seconds of each iteration (and variant) stacked side by side, and the
    peak memory of one job."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), dpi=100)
    wide = df.assign(
        run=[f"{v} iter{t}" if v else f"iter{t}" for v, t in zip(df["variant"], df["iteration"], strict=True)]
    )
    for ax, column, title in (
        (axes[0], "seconds", "time (s, all jobs)"),
        (axes[1], "max_rss_mb", "peak memory of a job (MB)"),
    ):
        wide.pivot_table(index="stage", columns="run", values=column, aggfunc="max", sort=False).plot.bar(
            ax=ax, rot=30, legend=ax is axes[0]
        )
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("")
    axes[0].legend(fontsize="x-small", ncol=2)
    save(fig, path)
