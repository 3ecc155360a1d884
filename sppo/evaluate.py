"""Stage evaluate: π_t against π_0 on the held-out prompts.

Each policy answers every held-out prompt once. The eval judge compares π_t's answer a with π_0's
answer b; the soft preference for a is p = σ((M_ab − M_ba) / 2) (0.5 for a tie). The win rate is
the mean of p; its 95% interval comes from a percentile bootstrap over prompts. The
length-controlled win rate is alpaca-eval's logistic GLM ``length_controlled_minimal`` (features:
tanh of the standardised length difference in characters and a model intercept), read off at zero
length difference.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

from sppo.judges import Judge
from sppo.winprob import sigmoid

log = logging.getLogger(__name__)


def preferences(judge: Judge, prompts: list[str], outputs: list[str], baseline: list[str]) -> np.ndarray:
    """p_n = σ((M_ab − M_ba)/2): how much the judge prefers ``outputs[n]`` (a) to ``baseline[n]`` (b)."""
    m = judge.judge(prompts, [[a, b] for a, b in zip(outputs, baseline, strict=True)]).logits
    return sigmoid((m[:, 0, 1] - m[:, 1, 0]) / 2.0)


def bootstrap_interval(p: np.ndarray, samples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(p), resampling prompts with replacement."""
    rng = np.random.default_rng(seed)
    means = p[rng.integers(0, len(p), size=(samples, len(p)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def _local_gamed_table(directory: Path, n: int) -> Path:
    """A stand-in for alpaca-eval's hub table ``df_gamed.csv``: the minimal GLM reads no column of it,
    but the library loads it unconditionally (and would go to the network)."""
    path = directory / "df_gamed.csv"
    lines = ["model,index,instruction_difficulty"] + [f"none,{i},0.0" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def length_controlled_winrate(
    prompts, outputs, baseline, p: np.ndarray, model: str, base: str
) -> float | None:
    """alpaca-eval's length-controlled win rate (in [0, 1]); None where the GLM is undefined."""
    from alpaca_eval.metrics import glm_winrate

    if model == base:
        return 0.5  # the library's own convention for a model against itself
    annotations = [
        {
            "index": i,
            "instruction": x,
            "output_1": b,
            "output_2": a,
            "preference": 1.0 + float(q),
            "generator_1": base,
            "generator_2": model,
            "annotator": "sppo",
        }
        for i, (x, a, b, q) in enumerate(zip(prompts, outputs, baseline, p, strict=True))
    ]
    lengths = np.array([len(b) - len(a) for a, b in zip(outputs, baseline, strict=True)], dtype=float)
    if lengths.std() == 0:
        return None  # the GLM standardises the length difference: undefined when it never varies
    with tempfile.TemporaryDirectory() as tmp:
        table = _local_gamed_table(Path(tmp), len(prompts))
        with mock.patch.object(glm_winrate, "hf_hub_download", return_value=str(table)):
            metrics = glm_winrate.get_length_controlled_winrate(
                annotations,
                glm_name="length_controlled_minimal",
                save_weights_dir=None,
                is_warn_extreme_changes=False,
            )
    return float(metrics["length_controlled_winrate"]) / 100.0


def metrics(
    judge: Judge,
    rows: list[dict],
    base_rows: list[dict],
    *,
    model: str,
    base: str,
    bootstrap_samples: int,
    seed: int,
) -> dict:
    """The metrics of π_t's answers ``rows`` against π_0's ``base_rows`` (matched by prompt id)."""
    by_id = {r["id"]: r for r in base_rows}
    missing = [r["id"] for r in rows if r["id"] not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} evaluation prompts have no baseline answer (first: {missing[0]})")
    prompts = [r["prompt"] for r in rows]
    outputs = [r["output"] for r in rows]
    baseline = [by_id[r["id"]]["output"] for r in rows]
    p = preferences(judge, prompts, outputs, baseline)
    low, high = bootstrap_interval(p, bootstrap_samples, seed)
    result = {
        "model": model,
        "baseline": base,
        "judge": judge.identity(),
        "n_prompts": len(rows),
        "win_rate": float(p.mean()),
        "win_rate_ci95": [low, high],
        "wins": int((p > 0.5).sum()),
        "ties": int((p == 0.5).sum()),
        "losses": int((p < 0.5).sum()),
        "lc_win_rate": length_controlled_winrate(prompts, outputs, baseline, p, model, base),
        "mean_length": float(np.mean([len(o) for o in outputs])),
        "baseline_mean_length": float(np.mean([len(b) for b in baseline])),
    }
    log.info("win rate %.3f [%.3f, %.3f] over %d prompts", result["win_rate"], low, high, len(rows))
    return result


def alpaca_eval_outputs(rows: list[dict], generator: str) -> list[dict]:
    """AlpacaEval's model-outputs format, for the official judge."""
    return [{"instruction": r["prompt"], "output": r["output"], "generator": generator} for r in rows]
