"""A handful of held-out prompts and what π_0 … π_T answer them, side by side, with the eval judge's
preference of each π_t's answer over π_0's (evaluate's annotations: preference − 1 in [0, 1])."""

from __future__ import annotations

import hashlib
import html

import pandas as pd

from sppo import io

COLUMNS = ["id", "prompt", "policy", "variant", "iteration", "answer", "preference_over_pi0"]


def choose(ids: list[str], n: int, seed: int) -> list[str]:
    """``n`` of ``ids``, the same for the same seed and ids whatever their order: those with the
    smallest sha256(seed:id), in their order in ``ids``."""
    key = {i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in ids}
    chosen = set(sorted(ids, key=key.get)[:n])
    return [i for i in ids if i in chosen]


def table(policies: list[tuple[str, int, str, str]], n: int, seed: int) -> pd.DataFrame:
    """``policies``: (variant, iteration, answers.jsonl, annotations.json) of π_0 … π_T. One row per
    chosen prompt and policy."""
    answers = [
        {r["id"]: r for r in io.read_jsonl(a, required=["id", "prompt", "output"])} for _, _, a, _ in policies
    ]
    ids = choose(list(answers[0]), n, seed)
    rows = []
    for (variant, t, _, judged), by_id in zip(policies, answers, strict=True):
        preference = {a["id"]: a["preference"] - 1.0 for a in io.read_json(judged)}
        for i in ids:
            rows.append(
                {
                    "id": i,
                    "prompt": by_id[i]["prompt"],
                    "policy": f"π_{t}" + (f" ({variant})" if variant and t else ""),
                    "variant": variant if t else "",
                    "iteration": t,
                    "answer": by_id[i]["output"],
                    "preference_over_pi0": preference[i],
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def to_html(df: pd.DataFrame) -> str:
    """A standalone page: one row per prompt, one column per policy, each answer with its preference."""
    policies = list(dict.fromkeys(df["policy"]))
    head = "".join(f"<th>{html.escape(p)}</th>" for p in policies)
    body = []
    for i, part in df.groupby("id", sort=False):
        cells = {r.policy: r for r in part.itertuples()}
        prompt = html.escape(part["prompt"].iloc[0])
        row = "".join(
            f"<td><pre>{html.escape(cells[p].answer)}</pre><span class=pref>preference over π_0: "
            f"{cells[p].preference_over_pi0:.3f}</span></td>"
            for p in policies
        )
        body.append(f"<tr><th><code>{html.escape(str(i))}</code><pre>{prompt}</pre></th>{row}</tr>")
    style = (
        "body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse} "
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;max-width:28em} "
        "pre{white-space:pre-wrap;margin:0} .pref{color:#555;font-size:11px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset=utf-8><title>Samples side by side</title>"
        f"<style>{style}</style></head><body><table id=samples><thead><tr><th>prompt</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></body></html>\n"
    )
