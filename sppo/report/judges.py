"""Judges side by side: the training judge and independent judges on the same held-out pairs.

Every judge's evaluate annotations (:func:`sppo.evaluate.annotate`) hold, per held-out prompt, π_0's
answer (``output_1``), π_t's (``output_2``) and the judge's preference for π_t, p = preference − 1
in [0, 1]. Per (variant, iteration, judge) the table gives:

- the win rate mean p, its interval and the LC win rate (the judge's metrics.json);
- its **side**: s = +1 where p > 0.5 (π_t preferred), −1 where p < 0.5, 0 for a tie;
- **agreement** with the training judge on the same prompts: the fraction of prompts where both
  judges' sides are equal (ties count as a side), and the Pearson correlation of the two p;
- **length bias**: ``longer_preference``, the mean preference for the longer answer over the prompts
  whose two answers differ in length (p where π_t's is longer, 1 − p where π_0's is; 0.5 = no
  pull towards length), and ``length_correlation``, the Pearson correlation of p with the length
  difference len(π_t) − len(π_0) in characters (the unit of the LC win rate's GLM).

A correlation is empty (None) where either series is constant: it is undefined there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sppo.report.series import colours, plt, save

COLUMNS = [
    "variant",
    "iteration",
    "judge",
    "role",
    "n_prompts",
    "win_rate",
    "win_rate_ci95_low",
    "win_rate_ci95_high",
    "lc_win_rate",
    "agreement_with_train",
    "correlation_with_train",
    "longer_preference",
    "length_correlation",
    "judge_requests",
    "judge_tokens",
]


def preferences(annotations: list[dict]) -> dict[str, float]:
    """p = preference − 1 by prompt id."""
    return {a["id"]: float(a["preference"]) - 1.0 for a in annotations}


def sides(p: np.ndarray) -> np.ndarray:
    """+1 where π_t is preferred (p > 0.5), −1 where π_0 is, 0 for a tie."""
    return np.sign(np.asarray(p, dtype=float) - 0.5)


def correlation(x, y) -> float | None:
    """Pearson correlation of x and y; None where either is constant (or fewer than 2 points)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def agreement(a: list[dict], b: list[dict]) -> tuple[float, float | None]:
    """(fraction of prompts where judges a and b prefer the same side, correlation of their p) over
    the prompts both judged; the two annotation sets must be of the same answers."""
    pa, pb = preferences(a), preferences(b)
    if set(pa) != set(pb):
        raise ValueError(f"the judges annotated different prompts ({len(pa)} and {len(pb)} ids)")
    ids = sorted(pa)
    x, y = np.array([pa[i] for i in ids]), np.array([pb[i] for i in ids])
    return float(np.mean(sides(x) == sides(y))), correlation(x, y)


def length_bias(annotations: list[dict]) -> tuple[float | None, float | None]:
    """(longer_preference, length_correlation) of one judge's annotations (module docstring)."""
    p = np.array([float(a["preference"]) - 1.0 for a in annotations])
    diff = np.array([len(a["output_2"]) - len(a["output_1"]) for a in annotations], dtype=float)
    differ = diff != 0
    longer = None
    if differ.any():
        longer = float(np.where(diff[differ] > 0, p[differ], 1.0 - p[differ]).mean())
    return longer, correlation(p, diff)


def roles(name: str, train: str, eval_: str) -> str:
    """How the run uses judge ``name``: "train", "eval", "train+eval" or "extra"."""
    used = [r for r, n in (("train", train), ("eval", eval_)) if n == name]
    return "+".join(used) or "extra"


def table(entries: list[dict], train: str, eval_: str) -> pd.DataFrame:
    """One row per entry {variant, iteration, judge, annotations, metrics}; agreement is with the
    entry of judge ``train`` for the same (variant, iteration)."""
    reference = {(e["variant"], e["iteration"]): e["annotations"] for e in entries if e["judge"] == train}
    rows = []
    for e in entries:
        key = (e["variant"], e["iteration"])
        m, usage = e["metrics"], e["metrics"].get("judge_usage") or {}
        agree, corr = (None, None)
        if e["judge"] != train and key in reference:
            agree, corr = agreement(reference[key], e["annotations"])
        longer, length_corr = length_bias(e["annotations"])
        tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0) if usage else None
        rows.append(
            {
                "variant": e["variant"],
                "iteration": e["iteration"],
                "judge": e["judge"],
                "role": roles(e["judge"], train, eval_),
                "n_prompts": m["n_prompts"],
                "win_rate": m["win_rate"],
                "win_rate_ci95_low": m["win_rate_ci95"][0],
                "win_rate_ci95_high": m["win_rate_ci95"][1],
                "lc_win_rate": m["lc_win_rate"],
                "agreement_with_train": agree,
                "correlation_with_train": corr,
                "longer_preference": longer,
                "length_correlation": length_corr,
                "judge_requests": usage.get("requests") if usage else None,
                "judge_tokens": tokens,
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS)
    if not df["variant"].astype(bool).any():
        df = df.drop(columns="variant")
    if df["judge_requests"].isna().all():
        df = df.drop(columns=["judge_requests", "judge_tokens"])  # no llm judge: no cost to show
    return df


def to_html(df: pd.DataFrame) -> str:
    """The table as a page of its own for ``snakemake --report``, to 4 decimals."""
    style = "body{font-family:sans-serif;font-size:13px} td,th{padding:2px 8px;text-align:right}"
    body = df.to_html(index=False, float_format=lambda x: f"{x:.4f}", border=0, na_rep="")
    return (
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>Judges side by side</title>"
        f"<style>{style}</style></head><body><h1>Judges side by side: π_t against π_0 on the same "
        f"held-out answers</h1>{body}</body></html>\n"
    )


def plot(df: pd.DataFrame, path: str) -> None:
    """Each judge's win rate against π_0 per iteration (one colour per judge, one line style per
    variant), and each judge's preference for the longer answer."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), dpi=120)
    colour = colours(df["judge"])
    d = df if "variant" in df else df.assign(variant="")
    variants = list(dict.fromkeys(d["variant"]))
    styles = ["-", "--", ":", "-."]
    for (judge, variant), part in d.groupby(["judge", "variant"], sort=False):
        style = styles[variants.index(variant) % len(styles)]
        role = part["role"].iloc[0]
        label = f"{variant}: {judge} ({role})" if variant else f"{judge} ({role})"
        left.plot(part["iteration"], part["win_rate"], style, marker="o", color=colour[judge], label=label)
        longer = part["longer_preference"].astype(float)
        if not longer.isna().all():
            right.plot(part["iteration"], longer, style, marker="o", color=colour[judge], label=label)
    for ax, title in ((left, "win rate against π_0"), (right, "preference for the longer answer")):
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_xlabel("iteration")
        ax.set_title(title)
        ax.set_ylim(-0.02, 1.02)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    save(fig, path)
