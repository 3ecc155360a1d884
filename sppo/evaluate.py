"""Stage evaluate: π_t against π_0 on the held-out prompts.

Each policy answers every held-out prompt once. The eval judge compares π_t's answer a with π_0's
answer b; the soft preference for a is p = σ((M_ab − M_ba) / 2) (0.5 for a tie). Each comparison is
stored as an AlpacaEval annotation, output_1 the baseline π_0 and output_2 π_t, with
preference = 1 + p in [1, 2] (1: π_0 wins, 2: π_t wins), and the metrics come from those records
alone. The win rate is mean(preference) − 1 (AlpacaEval's); its 95% interval comes from a
percentile bootstrap over prompts. The length-controlled win rate is alpaca-eval's logistic GLM
``length_controlled_minimal`` (features: tanh of the standardised length difference in characters
and a model intercept), read off at zero length difference.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from sppo import job, sampling
from sppo.judges import Judge
from sppo.winprob import sigmoid

log = logging.getLogger(__name__)


def pair_logits(judge: Judge, prompts: list[str], outputs: list[str], baseline: list[str]) -> np.ndarray:
    """(M_ab, M_ba) per prompt, shape (N, 2): the judge's logit that ``outputs[n]`` (a) beats
    ``baseline[n]`` (b), and that b beats a."""
    m = judge.judge(prompts, [[a, b] for a, b in zip(outputs, baseline, strict=True)]).logits
    return np.stack([m[:, 0, 1], m[:, 1, 0]], axis=1)


def preferences(logits: np.ndarray) -> np.ndarray:
    """p_n = σ((M_ab − M_ba)/2) from :func:`pair_logits`: how much the judge prefers a to b."""
    return sigmoid((logits[:, 0] - logits[:, 1]) / 2.0)


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


def length_controlled_winrate(annotations: list[dict]) -> float | None:
    """alpaca-eval's length-controlled win rate (in [0, 1]) of :func:`annotate`'s records; None where
    the GLM is undefined."""
    from alpaca_eval.metrics import glm_winrate

    if annotations[0]["generator_1"] == annotations[0]["generator_2"]:
        return 0.5  # the library's own convention for a model against itself
    lengths = np.array([len(a["output_1"]) - len(a["output_2"]) for a in annotations], dtype=float)
    if lengths.std() == 0:
        return None  # the GLM standardises the length difference: undefined when it never varies
    with tempfile.TemporaryDirectory() as tmp:
        table = _local_gamed_table(Path(tmp), len(annotations))
        with mock.patch.object(glm_winrate, "hf_hub_download", return_value=str(table)):
            metrics = glm_winrate.get_length_controlled_winrate(
                annotations,
                glm_name="length_controlled_minimal",
                save_weights_dir=None,
                is_warn_extreme_changes=False,
            )
    return float(metrics["length_controlled_winrate"]) / 100.0


def annotate(judge: Judge, rows: list[dict], base_rows: list[dict], *, model: str, base: str) -> list[dict]:
    """π_t's answers ``rows`` judged against π_0's ``base_rows`` (matched by prompt id), as AlpacaEval
    annotations: per prompt ``instruction``, ``output_1`` (π_0, the baseline), ``output_2`` (π_t),
    ``generator_1``/``generator_2``, ``annotator`` (the judge), ``preference`` = 1 + p in [1, 2]
    (1: output_1 wins, 2: output_2 wins), and the judge's logits ``logit_2_beats_1`` (M_ab) and
    ``logit_1_beats_2`` (M_ba). ``index`` is the position, ``id`` the prompt's id."""
    by_id = {r["id"]: r for r in base_rows}
    missing = [r["id"] for r in rows if r["id"] not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} evaluation prompts have no baseline answer (first: {missing[0]})")
    prompts = [r["prompt"] for r in rows]
    outputs = [r["output"] for r in rows]
    baseline = [by_id[r["id"]]["output"] for r in rows]
    started = time.monotonic()
    logits = pair_logits(judge, prompts, outputs, baseline)
    job.progress(log, "judged", len(rows), len(rows), "answer pairs", started)
    return [
        {
            "index": i,
            "id": row["id"],
            "instruction": row["prompt"],
            "output_1": b,
            "output_2": a,
            "generator_1": base,
            "generator_2": model,
            "annotator": judge.name,
            "preference": 1.0 + float(p),
            "logit_2_beats_1": float(m_ab),
            "logit_1_beats_2": float(m_ba),
        }
        for i, (row, a, b, p, (m_ab, m_ba)) in enumerate(
            zip(rows, outputs, baseline, preferences(logits), logits, strict=True)
        )
    ]


def metrics(
    annotations: list[dict], *, judge: dict, bootstrap_samples: int, seed: int, usage: dict | None = None
) -> dict:
    """The metrics of :func:`annotate`'s records alone, ``judge`` the eval judge's identity. With
    p = preference − 1 per prompt: the win rate is mean p (AlpacaEval's), a win is p > 0.5.
    ``usage``: what the judge's calls cost (:meth:`sppo.judges.Judge.usage`), kept as ``judge_usage``
    when there is any (an llm judge: requests sent and cached, tokens, unparseable verdicts)."""
    p = np.array([a["preference"] for a in annotations], dtype=float) - 1.0
    low, high = bootstrap_interval(p, bootstrap_samples, seed)
    result = {
        "model": annotations[0]["generator_2"],
        "baseline": annotations[0]["generator_1"],
        "judge": judge,
        "n_prompts": len(annotations),
        "win_rate": float(p.mean()),
        "win_rate_ci95": [low, high],
        "wins": int((p > 0.5).sum()),
        "ties": int((p == 0.5).sum()),
        "losses": int((p < 0.5).sum()),
        "lc_win_rate": length_controlled_winrate(annotations),
        "mean_length": float(np.mean([len(a["output_2"]) for a in annotations])),
        "baseline_mean_length": float(np.mean([len(a["output_1"]) for a in annotations])),
    }
    if usage:
        result["judge_usage"] = usage
        log.info("judge usage: %s", usage)
    log.info("win rate %.3f [%.3f, %.3f] over %d prompts", result["win_rate"], low, high, len(p))
    return result


def answer(
    model_path: str, model_config: dict, prompts: list[dict], settings: dict, seed: int
) -> tuple[list[dict], dict]:
    """π_t's answer to each held-out prompt, {id, prompt, output, finish_reason}, and the counts of
    prompts and answers cut (:func:`sppo.sampling.respond`). One sample per prompt, drawn with the
    run's backend as generate draws sample k, with the run's ``seed``; ``settings`` the evaluate
    sampling keys and the generate backend keys."""
    one_sample = {**settings, "k": 1, "sample_seeds": [seed]}
    rows, stats = sampling.respond(model_path, model_config, prompts, 0, 1, one_sample)
    return [
        {
            "id": r["id"],
            "prompt": r["prompt"],
            "output": r["responses"][0],
            "finish_reason": r["finish_reasons"][0],
        }
        for r in rows
    ], stats


def alpaca_eval_outputs(rows: list[dict], generator: str) -> list[dict]:
    """AlpacaEval's model-outputs format, for the official judge; outputs stripped of surrounding
    whitespace, as alpaca_eval strips the outputs it generates itself (``is_strip_output``)."""
    return [{"instruction": r["prompt"], "output": r["output"].strip(), "generator": generator} for r in rows]
