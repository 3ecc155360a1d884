"""Response lengths per iteration, the usual way preference optimisation games a judge: of the K
samples (generate) and of the evaluation answers, in characters and in tokens of π_0's tokenizer,
with the share that generation cut (max_new_tokens reached: finish reason "length"), that the train
limits (train.max_length, max_prompt_length) and the train judge cut, and the prompts that were cut
or dropped before generation for not fitting the model's context (generate.long_prompts)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sppo import io
from sppo.logprobs import encode_rows
from sppo.report.series import colours, label, save

COLUMNS = [
    "variant",
    "iteration",
    "responses",
    "n",
    "mean_chars",
    "median_chars",
    "mean_tokens",
    "median_tokens",
    "cut_by_generation",
    "cut_by_train",
    "cut_by_judge",
    "prompts_cut",
    "prompts_dropped",
]

# The shares of the K samples cut, as the right panel draws them: column, marker, line style, legend.
CUTS = [
    ("cut_by_generation", "^", "--", "cut by max_new_tokens"),
    ("cut_by_train", "o", "-", "cut by train limits"),
    ("cut_by_judge", "s", ":", "cut by judge"),
]


def measure(rows: list[dict], tokenizer, train: dict, judge_cut: int | None, stats: list[dict]) -> dict:
    """Length statistics of the responses of ``rows`` ({prompt, responses, finish_reasons}); ``judge_cut``
    how many of them the judge cut (None where the judge's cuts were not recorded); ``stats`` the
    generating jobs' counts of prompts cut and dropped (sppo.sampling.respond)."""
    texts = [r for row in rows for r in row["responses"]]
    reasons = [f for row in rows for f in row.get("finish_reasons", [])]
    chars = np.array([len(t) for t in texts], dtype=float)
    tokens = np.array([len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts], dtype=float)
    _, cut = encode_rows(
        tokenizer, rows, train["max_length"], train["max_prompt_length"], train["truncation"], "all"
    )
    return {
        "n": len(texts),
        "mean_chars": chars.mean(),
        "median_chars": float(np.median(chars)),
        "mean_tokens": tokens.mean(),
        "median_tokens": float(np.median(tokens)),
        # NaN for a run written before finish reasons were recorded
        "cut_by_generation": reasons.count("length") / len(texts) if len(reasons) == len(texts) else np.nan,
        "cut_by_train": cut["responses"] / len(texts),
        "cut_by_judge": np.nan if judge_cut is None else judge_cut / len(texts),
        "prompts_cut": sum(s["cut"] for s in stats),
        "prompts_dropped": sum(s["dropped"] for s in stats),
    }


def samples(shards: list[str], judges: list[str], stats: list[str], tokenizer, train: dict) -> dict:
    """:func:`measure` of one iteration's K samples (generate shards and their stats.json, the rank
    shards' judge.json)."""
    rows = [row for path in shards for row in io.read_jsonl(path, required=["prompt", "responses"])]
    cut = sum(io.read_json(path)["truncated"].get("responses", 0) for path in judges)
    return measure(rows, tokenizer, train, cut, [io.read_json(path) for path in stats])


def answers(path: str, stats: str, tokenizer, train: dict) -> dict:
    """:func:`measure` of one policy's evaluation answers (the eval judge's cuts are not recorded)."""
    rows = [
        {"prompt": r["prompt"], "responses": [r["output"]], "finish_reasons": [r.get("finish_reason")]}
        for r in io.read_jsonl(path)
    ]
    return measure(rows, tokenizer, train, None, [io.read_json(stats)])


def table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def plot(df: pd.DataFrame, path: str) -> None:
    """Mean length in tokens (characters on the right axis would crowd it: see the TSV) of the K
    samples of iteration t (drawn from π_{t−1}) and of π_t's evaluation answers, and the shares cut."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), dpi=100)
    colour = colours(df["variant"])
    for variant, part in df.groupby("variant", sort=False):
        for responses, style in (("samples", "-"), ("answers", "--")):
            rows = part[part["responses"] == responses]
            axes[0].plot(
                rows["iteration"],
                rows["mean_tokens"],
                linestyle=style,
                marker="o",
                color=colour[variant],
                label=label(variant, responses),
            )
            axes[1].plot(
                rows["iteration"], rows["mean_chars"], linestyle=style, marker="o", color=colour[variant]
            )
        rows = part[part["responses"] == "samples"]
        for column, marker, style, what in CUTS:
            axes[2].plot(
                rows["iteration"],
                rows[column],
                marker=marker,
                linestyle=style,
                color=colour[variant],
                label=label(variant, what),
            )
    axes[0].set_ylabel("mean length (tokens)")
    axes[1].set_ylabel("mean length (characters)")
    axes[2].set_ylabel("share of K samples cut")
    axes[2].set_ylim(-0.02, 1.02)
    for ax in axes:
        ax.set_xlabel("iteration t (samples: from π_{t−1}; answers: π_t)")
        ax.set_xticks(sorted(df["iteration"].unique()))
    axes[0].legend(fontsize="x-small")
    axes[2].legend(fontsize="x-small")
    save(fig, path)
