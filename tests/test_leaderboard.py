"""The leaderboard stage: lm-eval tasks on π_t, normalised as the Open LLM Leaderboard v2 does.

The workflow tests run local lm-eval tasks (a JSON Lines file and task YAMLs written here) on the
tiny model, offline.
"""

import csv
import importlib.metadata
import json
import math

import pytest
from conftest import scheduled_jobs, snakemake, write_config

from sppo import leaderboard
from sppo.summary import COLUMNS

# ---------------------------------------------------------------- normalisation, by hand


def test_normalize_maps_random_guessing_to_0_and_perfect_to_100():
    assert leaderboard.normalize(0.6, 0.25) == pytest.approx(46.6667, abs=1e-4)  # the leaderboard's example
    assert leaderboard.normalize(0.25, 0.25) == 0.0
    assert leaderboard.normalize(0.1, 0.25) == 0.0  # below chance: clipped
    assert leaderboard.normalize(1.0, 0.1) == pytest.approx(100.0)
    assert leaderboard.normalize(0.3, 0.0) == pytest.approx(30.0)


def _task(version, output_type, n, metrics):
    return {"version": version, "output_type": output_type, "n_samples": n, "metrics": metrics}


def _fake_lm_eval_output():
    """What simple_evaluate returns for the leaderboard group (a few of its subtasks), numbers made up."""
    mc, gen = "multiple_choice", "generate_until"
    leaf = {
        "leaderboard_ifeval": _task(
            3.0, gen, 541, {"inst_level_strict_acc,none": 0.5, "prompt_level_strict_acc,none": 0.4}
        ),
        "leaderboard_bbh_snarks": _task(1.0, mc, 178, {"acc_norm,none": 0.75}),
        "leaderboard_bbh_date_understanding": _task(1.0, mc, 250, {"acc_norm,none": 0.5}),
        "leaderboard_bbh_object_counting": _task(1.0, mc, 250, {"acc_norm,none": 0.04}),
        "leaderboard_math_algebra_hard": _task(3.0, gen, 30, {"exact_match,none": 0.1}),
        "leaderboard_math_geometry_hard": _task(3.0, gen, 10, {"exact_match,none": 0.0}),
        "leaderboard_gpqa_diamond": _task(1.0, mc, 198, {"acc_norm,none": 0.3}),
        "leaderboard_gpqa_main": _task(1.0, mc, 448, {"acc_norm,none": 0.25}),
        "leaderboard_gpqa_extended": _task(1.0, mc, 546, {"acc_norm,none": 0.3}),
        "leaderboard_musr_murder_mysteries": _task(1.0, mc, 250, {"acc_norm,none": 0.6}),
        "leaderboard_musr_object_placements": _task(1.0, mc, 256, {"acc_norm,none": 0.3}),
        "leaderboard_musr_team_allocation": _task(1.0, mc, 250, {"acc_norm,none": 0.4}),
        "leaderboard_mmlu_pro": _task(0.1, mc, 12032, {"acc,none": 0.37, "acc_stderr,none": float("nan")}),
        "my_task": _task(1.0, mc, 2, {"acc,none": 0.5, "acc_norm,none": 0.75}),
    }
    return {
        "results": {name: {"alias": name, **t["metrics"]} for name, t in leaf.items()}
        | {"leaderboard": {"alias": "leaderboard", "acc_norm,none": 0.4}},
        "groups": {"leaderboard": {"acc_norm,none": 0.4, "acc_norm_stderr,none": "N/A"}},
        "group_subtasks": {"leaderboard": sorted(leaf)},
        "configs": {name: {"output_type": t["output_type"]} for name, t in leaf.items()},
        "versions": {name: t["version"] for name, t in leaf.items()} | {"leaderboard": 1.0},
        "n-shot": {name: 0 for name in leaf},
        "n-samples": {
            name: {"original": t["n_samples"], "effective": t["n_samples"]} for name, t in leaf.items()
        },
        # my_task: one document with 4 choices and one with 2 → random baseline (1/4 + 1/2) / 2
        "samples": {
            "my_task": [{"arguments": [("q", c) for c in "abcd"]}, {"arguments": [("q", "a"), ("q", "b")]}]
        },
        "config": {"random_seed": 0, "numpy_seed": 1234, "torch_seed": 1234, "fewshot_seed": 1234},
    }


def test_report_normalises_each_benchmark_as_the_leaderboard():
    settings = {"tasks": ["leaderboard", "my_task"]}
    out = leaderboard.report(_fake_lm_eval_output(), settings, "0.4.13")
    b = {key: v["normalized"] for key, v in out["benchmarks"].items()}
    # IFEval: mean of the strict instruction- and prompt-level accuracies, baseline 0
    assert b["ifeval"] == pytest.approx(45.0)
    # BBH: each subtask against its own 1/num_choices, then the plain mean
    #   snarks 2 choices: (0.75−½)/½ = 50; date 6: (0.5−⅙)/(⅚) = 40; object counting 19: below chance → 0
    assert b["bbh"] == pytest.approx((50.0 + 40.0 + 0.0) / 3)
    # MATH: size-weighted exact match (30·0.1 + 10·0) / 40 = 0.075, baseline 0
    assert b["math_hard"] == pytest.approx(7.5)
    # GPQA: size-weighted acc_norm (198·0.3 + 448·0.25 + 546·0.3) / 1192 = 0.2812081, baseline ¼
    assert b["gpqa"] == pytest.approx(4.16107, abs=1e-5)
    # MuSR: murder mysteries (0.6−½)/½ = 20, object placements (0.3−⅕)/⅘ = 12.5, team (0.4−⅓)/⅔ = 10
    assert b["musr"] == pytest.approx((20.0 + 12.5 + 10.0) / 3)
    # MMLU-Pro: acc against 1/10
    assert b["mmlu_pro"] == pytest.approx(30.0)
    # any other task: acc_norm against 1/num_choices averaged over its documents (0.375)
    assert out["tasks"]["my_task"]["random_baseline"] == pytest.approx(0.375)
    assert b["my_task"] == pytest.approx((0.75 - 0.375) / 0.625 * 100)
    assert out["benchmarks"]["gpqa"]["raw"] == pytest.approx(335.2 / 1192)
    assert out["benchmarks"]["bbh"]["name"] == "BBH"
    assert out["average"] == pytest.approx(sum(b.values()) / 7)
    # provenance: the harness's and every task's and group's version; NaN and "N/A" made JSON-safe
    assert out["harness"] == {"name": "lm-eval", "version": "0.4.13"}
    assert out["tasks"]["leaderboard_mmlu_pro"]["version"] == 0.1
    assert out["tasks"]["leaderboard_mmlu_pro"]["metrics"]["acc_stderr,none"] is None
    assert out["groups"]["leaderboard"]["version"] == 1.0
    assert out["seeds"]["fewshot_seed"] == 1234
    json.dumps(out, allow_nan=False)


def test_the_six_leaderboard_benchmarks_average_as_the_seed_card():
    # Gemma-2-9B-It-SPPO-Iter2: IFEval 31.00, BBH 42.17, MATH 0.00, GPQA 11.30, MuSR 10.94, MMLU-Pro 31.89
    card = [31.00, 42.17, 0.00, 11.30, 10.94, 31.89]
    assert round(sum(card) / len(card), 2) == 21.22
    assert set(leaderboard.LEADERBOARD) == {"ifeval", "bbh", "math_hard", "gpqa", "musr", "mmlu_pro"}


# ---------------------------------------------------------------- through the workflow

ROWS = [
    {
        "question": f"What comes after {i}?",
        "choices": [str(i + 1), str(i + 2), str(i * 3), "none"],
        "answer": 0,
    }
    for i in range(10)
]
MC_TASK = """task: sppo_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
"""
GEN_TASK = """task: sppo_tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices[answer]}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
metadata:
  version: 2.0
"""
SUITE = """group: sppo_tiny_suite
task: [sppo_tiny_mc, sppo_tiny_gen]
aggregate_metric_list:
  - metric: acc_norm
    weight_by_size: true
metadata:
  version: 3.0
"""
TINY_RUN = {
    "iterations": 1,
    "shards": 1,
    "split": {"eval_size": 8, "max_per_iteration": 16},
    "generate": {"k": 2, "max_new_tokens": 8},
    "evaluate": {"max_new_tokens": 8, "bootstrap_samples": 100},
}


@pytest.fixture
def local_tasks(tmp_path):
    return write_tasks(tmp_path / "tasks")


def write_tasks(directory):
    """A directory of lm-eval task YAMLs over a local JSON Lines file: one multiple-choice task, one
    generative, and a group of both."""
    directory.mkdir()
    data = directory / "questions.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    (directory / "tiny_mc.yaml").write_text(MC_TASK.format(data=data))
    (directory / "tiny_gen.yaml").write_text(GEN_TASK.format(data=data))
    (directory / "suite.yaml").write_text(SUITE)
    return directory


def _leaderboard(local_tasks, **overrides):
    return {
        "enabled": True,
        "tasks": ["sppo_tiny_suite"],
        "include_path": str(local_tasks),
        "num_fewshot": 1,
        "limit": 6,
        "batch_size": 4,
    } | overrides


def test_benchmarks_run_only_when_enabled(workflow, local_tasks):
    write_config(workflow, TINY_RUN)
    assert "leaderboard" not in scheduled_jobs(workflow, "iter1")
    write_config(workflow, TINY_RUN | {"leaderboard": _leaderboard(local_tasks)})
    assert scheduled_jobs(workflow, "iter1")["leaderboard"] == 2  # π_0 and π_1


def test_benchmarks_land_in_results_and_summary(workflow, local_tasks):
    write_config(workflow, TINY_RUN | {"leaderboard": _leaderboard(local_tasks)})
    snakemake(workflow, "iter1")
    harness = importlib.metadata.version("lm_eval")
    with open(workflow / "results/summary/metrics.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert list(rows[0])[: len(COLUMNS)] == COLUMNS  # the existing columns first, unchanged
    for t in (0, 1):
        out = json.loads((workflow / f"results/iter{t}/leaderboard/results.json").read_text())
        assert out["harness"] == {"name": "lm-eval", "version": harness}
        assert out["tasks"]["sppo_tiny_mc"]["version"] == 1.0
        assert out["tasks"]["sppo_tiny_gen"]["version"] == 2.0
        assert out["groups"]["sppo_tiny_suite"]["version"] == "3.0"
        mc, gen = out["tasks"]["sppo_tiny_mc"], out["tasks"]["sppo_tiny_gen"]
        assert mc["n_samples"] == gen["n_samples"] == 6 and mc["num_fewshot"] == 1
        assert mc["random_baseline"] == 0.25 and gen["random_baseline"] == 0.0
        assert set(mc["metrics"]) >= {"acc,none", "acc_norm,none"}
        for name, metric in (("sppo_tiny_mc", "acc_norm,none"), ("sppo_tiny_gen", "exact_match,none")):
            task = out["tasks"][name]
            expected = leaderboard.normalize(task["metrics"][metric], task["random_baseline"])
            assert out["benchmarks"][name]["normalized"] == pytest.approx(expected)
        assert out["average"] == pytest.approx(sum(b["normalized"] for b in out["benchmarks"].values()) / 2)
        row = rows[t]
        assert float(row["leaderboard_sppo_tiny_mc"]) == pytest.approx(
            out["benchmarks"]["sppo_tiny_mc"]["normalized"]
        )
        assert float(row["leaderboard_sppo_tiny_gen"]) == pytest.approx(
            out["benchmarks"]["sppo_tiny_gen"]["normalized"]
        )
        assert float(row["leaderboard_average"]) == pytest.approx(out["average"], abs=1e-6)
        assert not math.isnan(float(row["win_rate"]))


def test_an_unknown_task_fails_at_once_naming_it(workflow, local_tasks):
    # π_0 is a hub model here that is never fetched (offline): the task check must come first
    lb = _leaderboard(local_tasks, tasks=["sppo_tiny_mc", "no_such_task"])
    write_config(workflow, {"model": {"base": "example-org/not-fetched"}, "leaderboard": lb})
    proc = snakemake(workflow, "results/iter0/leaderboard/results.json", check=False)
    assert proc.returncode != 0
    log = (workflow / "logs/leaderboard/iter0.log").read_text()
    assert "unknown lm-eval task(s) 'no_such_task'" in log
    assert "not-fetched" not in log  # failed before it tried to load the model
