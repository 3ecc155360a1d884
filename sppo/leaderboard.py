"""Stage leaderboard: lm-evaluation-harness tasks on π_t, scored as the Open LLM Leaderboard v2 does.

By default the tasks are lm-eval's ``leaderboard`` group (IFEval, BBH, MATH Lvl 5, GPQA, MuSR,
MMLU-Pro) with the chat template and few-shot examples as a multi-turn chat, which reproduces the
published leaderboard numbers. Every raw score becomes a normalised one:

    normalised = max(0, (raw − b) / (1 − b)) × 100,   b = the task's random baseline

b is 1/num_choices for multiple-choice tasks and 0 for generative ones (IFEval, MATH). A benchmark
pools its parts as the leaderboard does: BBH and MuSR average their subtasks' normalised scores
(each with its own b); GPQA, MATH and MMLU-Pro normalise the size-weighted raw mean over their
subtasks; IFEval averages its instruction- and prompt-level strict accuracies. The average is the
mean over benchmarks. Any other task is a benchmark of its own (metric: acc_norm, else acc, else
exact_match, else its first metric; b: 1/num_choices averaged over the evaluated documents).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Benchmark:
    name: str  # as the leaderboard shows it
    prefix: str  # the lm-eval leaf tasks it is made of
    metrics: tuple[str, ...]
    pooling: str  # "mean": mean of normalised parts; "size": normalise the size-weighted raw mean


LEADERBOARD = {
    "ifeval": Benchmark(
        "IFEval", "leaderboard_ifeval", ("inst_level_strict_acc", "prompt_level_strict_acc"), "mean"
    ),
    "bbh": Benchmark("BBH", "leaderboard_bbh_", ("acc_norm",), "mean"),
    "math_hard": Benchmark("MATH Lvl 5", "leaderboard_math_", ("exact_match",), "size"),
    "gpqa": Benchmark("GPQA", "leaderboard_gpqa_", ("acc_norm",), "size"),
    "musr": Benchmark("MuSR", "leaderboard_musr_", ("acc_norm",), "mean"),
    "mmlu_pro": Benchmark("MMLU-Pro", "leaderboard_mmlu_pro", ("acc",), "size"),
}
PREFERRED_METRICS = ("acc_norm", "acc", "exact_match")
SEEDS = ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")  # lm-eval's defaults, kept

# Number of choices the leaderboard assumes for its multiple-choice tasks (random baseline 1/n).
# MMLU-Pro counts 10 even for the questions with fewer options; the rest follow lm-eval's YAMLs.
NUM_CHOICES = {
    "leaderboard_mmlu_pro": 10,
    "leaderboard_gpqa_diamond": 4,
    "leaderboard_gpqa_extended": 4,
    "leaderboard_gpqa_main": 4,
    "leaderboard_musr_murder_mysteries": 2,
    "leaderboard_musr_object_placements": 5,
    "leaderboard_musr_team_allocation": 3,
    **{
        f"leaderboard_bbh_{name}": n
        for name, n in {
            "boolean_expressions": 2,
            "causal_judgement": 2,
            "date_understanding": 6,
            "disambiguation_qa": 3,
            "formal_fallacies": 2,
            "geometric_shapes": 11,
            "hyperbaton": 2,
            "logical_deduction_five_objects": 5,
            "logical_deduction_seven_objects": 7,
            "logical_deduction_three_objects": 3,
            "movie_recommendation": 6,
            "navigate": 2,
            "object_counting": 19,
            "penguins_in_a_table": 5,
            "reasoning_about_colored_objects": 18,
            "ruin_names": 6,
            "salient_translation_error_detection": 6,
            "snarks": 2,
            "sports_understanding": 2,
            "temporal_sequences": 4,
            "tracking_shuffled_objects_five_objects": 5,
            "tracking_shuffled_objects_seven_objects": 7,
            "tracking_shuffled_objects_three_objects": 3,
            "web_of_lies": 2,
        }.items()
    },
}


def normalize(raw: float, baseline: float) -> float:
    """max(0, (raw − b) / (1 − b)) × 100: 0 at random guessing, 100 at a perfect score."""
    return max(0.0, (raw - baseline) / (1.0 - baseline)) * 100.0


# ---------------------------------------------------------------- running lm-eval


def run(model, tokenizer, tasks: list, manager, settings: dict) -> dict:
    """lm-eval's ``simple_evaluate`` of the loaded policy on the built ``tasks``, as the settings say."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=settings["batch_size"])
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        num_fewshot=settings["num_fewshot"],
        limit=settings["limit"],
        apply_chat_template=settings["apply_chat_template"],
        fewshot_as_multiturn=settings["fewshot_as_multiturn"],
        log_samples=True,  # the number of choices of each document gives its random baseline
    )


# ---------------------------------------------------------------- scoring


def _finite(value):
    """JSON-safe: lm-eval reports missing stderrs as NaN or "N/A"."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _metric_values(results: dict) -> dict:
    return {key: _finite(v) for key, v in results.items() if "," in key}


def random_baseline(task: str, config: dict, samples: list[dict]) -> float:
    """The leaderboard's 1/num_choices for its tasks; else 1/num_choices averaged over the evaluated docs."""
    if task in NUM_CHOICES:
        return 1.0 / NUM_CHOICES[task]
    if config.get("output_type") != "multiple_choice" or not samples:
        return 0.0
    return sum(1.0 / len(s["arguments"]) for s in samples) / len(samples)


def metric_value(metrics: dict, metric: str) -> float:
    """The value of ``metric`` (unfiltered if lm-eval reports it so, else its first filter)."""
    keys = sorted(k for k in metrics if k.split(",")[0] == metric)
    keys.sort(key=lambda k: k != f"{metric},none")
    if not keys:
        raise KeyError(f"metric {metric!r} not among {sorted(metrics)}")
    return metrics[keys[0]]


def _benchmark_of(task: str) -> str:
    """The leaderboard benchmark ``task`` belongs to, or the task itself."""
    return next((key for key, b in LEADERBOARD.items() if task.startswith(b.prefix)), task)


def _own_metric(metrics: dict) -> str:
    names = sorted({k.split(",")[0] for k in metrics if "_stderr" not in k.split(",")[0]})
    return next((m for m in PREFERRED_METRICS if m in names), names[0])


def benchmark_scores(tasks: dict) -> dict:
    """Each benchmark's normalised score from the task records (metrics, n_samples, random_baseline)."""
    members: dict[str, list[str]] = {}
    for task in sorted(tasks):
        members.setdefault(_benchmark_of(task), []).append(task)
    scores = {}
    for key, names in members.items():
        benchmark = LEADERBOARD.get(key) or Benchmark(key, key, (_own_metric(tasks[key]["metrics"]),), "mean")
        parts = [
            {
                "task": name,
                "metric": metric,
                "raw": metric_value(tasks[name]["metrics"], metric),
                "n": tasks[name]["n_samples"],
                "random_baseline": tasks[name]["random_baseline"],
            }
            for metric in benchmark.metrics
            for name in names
        ]
        for part in parts:
            part["normalized"] = normalize(part["raw"], part["random_baseline"])
        if benchmark.pooling == "size":  # one part: the subtasks pooled as one task
            n = sum(p["n"] for p in parts)
            raw = sum(p["raw"] * p["n"] for p in parts) / n
            normalized = normalize(raw, sum(p["random_baseline"] * p["n"] for p in parts) / n)
        else:
            raw = sum(p["raw"] for p in parts) / len(parts)
            normalized = sum(p["normalized"] for p in parts) / len(parts)
        scores[key] = {
            "name": benchmark.name,
            "pooling": benchmark.pooling,
            "raw": raw,
            "normalized": normalized,
            "parts": parts,
        }
    return scores


def report(raw: dict, settings: dict, harness_version: str) -> dict:
    """results.json: each task's metrics and version, the groups, the normalised benchmarks, their average."""
    samples = raw.get("samples", {})
    tasks = {
        name: {
            "version": raw["versions"].get(name),
            "output_type": config.get("output_type"),
            "num_fewshot": raw["n-shot"].get(name),
            "n_samples": raw["n-samples"][name]["effective"],
            "n_documents": raw["n-samples"][name]["original"],
            "metrics": _metric_values(raw["results"][name]),
            "random_baseline": random_baseline(name, config, samples.get(name, [])),
        }
        for name, config in raw["configs"].items()
    }
    groups = {
        name: {
            "version": raw["versions"].get(name),
            "subtasks": raw["group_subtasks"].get(name, []),
            "metrics": _metric_values(metrics),
        }
        for name, metrics in raw.get("groups", {}).items()
    }
    benchmarks = benchmark_scores(tasks)
    return {
        "harness": {"name": "lm-eval", "version": harness_version},
        "settings": settings,
        "seeds": {k: raw["config"].get(k) for k in SEEDS},
        "tasks": tasks,
        "groups": groups,
        "benchmarks": benchmarks,
        "average": sum(b["normalized"] for b in benchmarks.values()) / len(benchmarks),
    }
