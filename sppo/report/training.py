"""Training curves from the train logs: loss, mean r_w and r_l with their targets η(P̂ − ½),
gradient norm and learning rate per logged optimizer step (sppo.train.SPPOTrainer.log)."""

from __future__ import annotations

import ast

import matplotlib.pyplot as plt
import pandas as pd

from sppo.report.series import colours, label, save

COLUMNS = ["loss", "r_w", "target_w", "r_l", "target_l", "grad_norm", "learning_rate"]
PANELS = [
    ("loss", "loss", None),
    ("r_w", "chosen: mean r_w (dashed: target)", "target_w"),
    ("r_l", "rejected: mean r_l (dashed: target)", "target_l"),
    ("margin", "margin r_w − r_l (dashed: target)", "target_margin"),
    ("grad_norm", "gradient norm", None),
    ("learning_rate", "learning rate", None),
]


def parse_log(text: str) -> list[dict]:
    """The Trainer's logged dicts that carry a training loss (one per logging step), as floats."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("{") and "'loss'" in line):
            continue
        logged = ast.literal_eval(line)
        rows.append({key: float(logged[key]) for key in ["step", *COLUMNS] if key in logged})
    return rows


def table(logs: list[tuple[str, int, str]]) -> pd.DataFrame:
    """One row per logged step of each (variant, iteration, log file); a log without any is an error."""
    frames = []
    for variant, t, path in logs:
        with open(path, encoding="utf-8") as f:
            rows = parse_log(f.read())
        if not rows:
            raise ValueError(f"{path}: no logged training step (train.logging_steps larger than the run?)")
        df = pd.DataFrame(rows, columns=["step", *COLUMNS])
        df.insert(0, "iteration", t)
        df.insert(0, "variant", variant)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["step"] = df["step"].astype(int)
    return df


def plot(df: pd.DataFrame, path: str) -> None:
    """One panel per quantity (and the margin r_w − r_l); the iterations one after the other on one
    axis (a grey line where each starts); one colour per variant."""
    df = df.assign(margin=df["r_w"] - df["r_l"], target_margin=df["target_w"] - df["target_l"])
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.4), dpi=100)
    colour = colours(df["variant"])
    offsets = _offsets(df)
    for ax, (column, title, target) in zip(axes.flat, PANELS, strict=True):
        for (variant, t), part in df.groupby(["variant", "iteration"], sort=False):
            x = part["step"] + offsets[t]
            first = t == df["iteration"].min()
            ax.plot(
                x, part[column], marker=".", color=colour[variant], label=label(variant) if first else None
            )
            if target:
                ax.plot(x, part[target], linestyle="--", color=colour[variant])
        for t, start in offsets.items():
            ax.axvline(start, color="grey", linewidth=0.6)
            ax.annotate(
                f"iter {t}", (start, 1), xycoords=("data", "axes fraction"), fontsize="x-small", va="top"
            )
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("optimizer step (all iterations)")
    if len(colour) > 1:
        axes[0][0].legend(fontsize="small")
    save(fig, path)


def _offsets(df: pd.DataFrame) -> dict[int, int]:
    """Iteration → the step the iteration starts at on the shared axis (the longest variant's steps)."""
    offsets, start = {}, 0
    for t in sorted(df["iteration"].unique()):
        offsets[int(t)] = start
        start += int(df.loc[df["iteration"] == t, "step"].max())
    return offsets
