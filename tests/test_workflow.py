"""The whole workflow through Snakemake's CLI: results, caching, resuming, determinism, bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, early_result, scheduled_jobs, snakemake, write_config

DETERMINISTIC = [
    "results/split/iter1.jsonl",
    "results/split/iter3.jsonl",
    "results/split/eval.jsonl",
    "results/iter1/generate/shard0.jsonl",
    "results/iter2/generate/shard1.jsonl",
    "results/iter3/generate/shard0.jsonl",
    "results/iter1/rank/shard0.jsonl",
    "results/iter3/rank/shard1.jsonl",
    "results/iter1/winprob/pairs.jsonl",
    "results/iter3/winprob/pairs.jsonl",
    "results/iter2/reflogp/pairs.jsonl",
    "results/iter3/evaluate/answers.jsonl",
    "results/iter1/evaluate/metrics.json",
    "results/iter3/evaluate/metrics.json",
    "results/summary/metrics.tsv",
]


def metrics(run, t):
    return json.loads((run / f"results/iter{t}/evaluate/metrics.json").read_text())


def test_sppo_improves_on_the_base_policy(finished_run):
    m = [metrics(finished_run, t) for t in range(4)]
    assert m[0]["win_rate"] == 0.5 and m[0]["model"] == m[0]["baseline"] == "tiny"
    assert m[3]["win_rate_ci95"][0] > 0.5, m[3]
    assert m[3]["win_rate"] > m[1]["win_rate"] > 0.5
    for t in range(4):
        assert m[t]["n_prompts"] == 60
        assert m[t]["win_rate_ci95"][0] <= m[t]["win_rate"] <= m[t]["win_rate_ci95"][1]
        assert m[t]["lc_win_rate"] is not None and m[t]["mean_length"] > 0


def test_every_stage_left_its_artifacts(finished_run):
    results = finished_run / "results"
    pairs = [json.loads(line) for line in (results / "iter2/reflogp/pairs.jsonl").read_text().splitlines()]
    split_part = (results / "split/iter2.jsonl").read_text().splitlines()
    assert len(pairs) == len(split_part)
    for key in ("chosen", "rejected", "chosen_probs", "chosen_probs_win", "chosen_probs_lose", "probs"):
        assert key in pairs[0]
    assert pairs[0]["chosen_probs_win"] >= pairs[0]["chosen_probs_lose"]
    ranked = json.loads((results / "iter1/rank/shard0.jsonl").read_text().splitlines()[0])
    assert len(ranked["logits"]) == len(ranked["scores"]) == len(ranked["responses"]) == 5
    judge = json.loads((results / "iter1/rank/shard0.judge.json").read_text())
    assert judge["judge"]["name"] == "synthetic"
    for t in range(4):
        export = json.loads((results / f"iter{t}/evaluate/alpaca_eval.json").read_text())
        assert len(export) == 60 and set(export[0]) == {"instruction", "output", "generator"}
    assert (results / "iter3/model/model.safetensors").is_file()
    assert (
        json.loads((results / "iter3/model/sppo_train.json").read_text())["parent"] == "results/iter2/model"
    )
    table = (results / "summary/metrics.tsv").read_text().splitlines()
    assert table[0].split("\t")[:4] == ["iteration", "model", "n_prompts", "win_rate"] and len(table) == 5
    assert (results / "summary/winrate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "optimizer steps" in (finished_run / "logs/train/iter1.log").read_text()


def test_default_target_is_the_last_iteration(workflow):
    plain = scheduled_jobs(workflow)
    assert plain == scheduled_jobs(workflow, "iter3")
    assert plain["iter3"] == 1 and plain["train"] == 3 and plain["summary"] == 1
    assert scheduled_jobs(workflow, "iter1")["train"] == 1


def test_complete_run_schedules_nothing(finished_run):
    assert scheduled_jobs(finished_run, "iter3") == {}


def test_changed_generation_setting_reruns_only_what_depends_on_it(copy_run):
    run = copy_run()
    write_config(run, {"generate": {"temperature": 0.9}})
    jobs = scheduled_jobs(run, "iter3")
    assert jobs == {
        "generate": 6,
        "rank": 6,
        "winprob": 3,
        "reflogp": 6,
        "reflogp_merge": 3,
        "train": 3,
        "evaluate_answers": 3,
        "evaluate": 3,
        "summary": 1,
        "report_training": 1,
        "report_distributions": 1,
        "report_lengths": 1,
        "report_resources": 1,
        "report_samples": 1,
        "run_card": 1,
        "iter3": 1,
    }


def test_changed_training_setting_keeps_reference_logps(copy_run):
    run = copy_run()
    write_config(run, {"train": {"learning_rate": 2.0e-3}})
    jobs = scheduled_jobs(run, "iter3")
    # π_1 changes, so iterations 2 and 3 regenerate; iteration 1's data and reference log-probs stay.
    assert (
        jobs["train"] == 3 and jobs["reflogp"] == 4 and jobs["reflogp_merge"] == 2 and jobs["generate"] == 4
    )


def test_changed_bootstrap_reruns_only_the_metrics(copy_run):
    run = copy_run()
    write_config(run, {"evaluate": {"bootstrap_samples": 500}})
    assert scheduled_jobs(run, "iter3") == {
        "evaluate": 4,
        "summary": 1,
        "report_samples": 1,  # the judge's preferences beside the answers
        "report_resources": 1,  # evaluate's benchmark files
        "run_card": 1,
        "iter3": 1,
    }


def test_reordered_config_keys_rerun_nothing(copy_run):
    """Caching depends on values only: the keys reversed at every level, or sorted as a YAML dumper
    sorts them, schedule no job (rules take config sections as params, compared by repr)."""
    run = copy_run()
    path = run / "config/config.yaml"
    config = yaml.safe_load(path.read_text())

    def reverse(node):
        return {k: reverse(node[k]) for k in reversed(list(node))} if isinstance(node, dict) else node

    path.write_text(yaml.safe_dump(reverse(config), sort_keys=False))
    assert path.read_text().startswith("evaluate:")  # the file really changed order
    assert scheduled_jobs(run, "iter3") == {}
    path.write_text(yaml.safe_dump(config, sort_keys=True))
    assert scheduled_jobs(run, "iter3") == {}
    write_config(run, {"train": {"eta": 50}})  # a changed value still reruns
    assert scheduled_jobs(run, "iter3")["train"] == 3


def test_a_run_moved_with_its_timestamps_plans_nothing(copy_run):
    """docs/usage.md, Moving a finished run: copy_run copies the run to another path keeping the
    timestamps and .snakemake/ (as cp -a): nothing is planned. A script newer than its outputs (what
    a plain cp -r or a fresh checkout gives) plans its rule and what follows as "Code has changed";
    --touch marks the outputs current again without running anything."""
    run = copy_run()
    assert scheduled_jobs(run, "iter3") == {}
    script = run / "scripts" / "summary.py"
    # newer than the summary's outputs but not in the future, so that --touch (now) ends newer again
    newest = max(p.stat().st_mtime for p in (run / "results" / "summary").iterdir())
    assert newest + 1 < time.time()
    os.utime(script, (newest + 1, newest + 1))
    proc = snakemake(run, "iter3", "-n")
    assert "summary" in scheduled_jobs(run, "iter3") and "Code has changed" in proc.stdout + proc.stderr
    snakemake(run, "iter3", "--touch")
    assert scheduled_jobs(run, "iter3") == {}


def test_report_shows_the_summary(copy_run):
    run = copy_run()
    snakemake(run, "iter3", "--report", "report.html")
    html = (run / "report.html").read_text(errors="replace")
    assert "metrics.tsv" in html and "winrate.png" in html
    # the landing page says what the run is; the summary table is there as HTML too
    assert "SPPO: Self-Play Preference Optimization" in html and "metrics.html" in html
    page = (run / "results/summary/metrics.html").read_text()
    tsv = (run / "results/summary/metrics.tsv").read_text().splitlines()
    assert page.count("<tr") == len(tsv)  # header and one row per π_t, as in metrics.tsv
    # the run card's caption runs the audit when the report is built: after an edit it says so
    assert "Provenance audit, run when this report was built" in html
    assert "<strong>passed</strong> at " in html
    pairs = run / "results/iter2/winprob/pairs.jsonl"
    lines = pairs.read_text().splitlines()
    row = json.loads(lines[0])
    row["prompt"] += " (edited)"
    pairs.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    snakemake(run, "iter3", "--report", "edited.html")
    edited = (run / "edited.html").read_text(errors="replace")
    assert "<strong>FAILED</strong> (exit status 1) at " in edited
    assert "results/iter2/winprob/pairs.jsonl" in edited


def test_killed_run_resumes_unfinished_jobs_and_is_deterministic(copy_run, finished_run):
    """kill -9 in the middle; the rerun does only what was left and ends byte-identical to a clean run.

    It starts from the shared run with iteration 3 and the summary removed, so the killed run makes
    them again from π_2, and is killed once iteration 3's pairs exist (that the split and the earlier
    iterations come out the same from nothing is tests/test_variants.py's check: its sppo variant
    equals the shared run)."""
    workflow = copy_run()
    for name in ("results/iter3", "results/summary"):
        shutil.rmtree(workflow / name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2", "iter3"],
        cwd=workflow,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not (workflow / "results/iter3/winprob/pairs.jsonl").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.2)
    time.sleep(1.0)  # let the reference log-probs start
    os.killpg(proc.pid, signal.SIGKILL)
    output = proc.communicate()[0]
    done = max(int(line.split()[0]) for line in output.splitlines() if "steps (" in line and " of " in line)
    total = int(next(line for line in output.splitlines() if "steps (" in line).split()[2])

    # Nothing that exists looks complete unless it is: every JSON Lines file parses to the end.
    for path in (workflow / "results").rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            json.loads(line)

    resumed = scheduled_jobs(workflow, "iter3")
    remaining = sum(resumed.values())
    assert total - done <= remaining <= total - done + 2  # at most two jobs were in flight (2 cores)
    assert "basemodel" not in resumed and "split" not in resumed and resumed.get("generate", 0) <= 2
    snakemake(workflow, "--unlock")  # kill -9 leaves Snakemake's lock behind
    snakemake(workflow, "iter3")
    assert scheduled_jobs(workflow, "iter3") == {}
    for name in DETERMINISTIC:
        assert (workflow / name).read_bytes() == (finished_run / name).read_bytes(), name


def test_bad_config_fails_before_any_job(workflow):
    write_config(workflow, {"generate": {"k": 1}})
    proc = snakemake(workflow, "iter3", check=False)
    assert proc.returncode != 0
    assert "config key generate.k: 1 is less than the minimum of 2" in proc.stderr + proc.stdout
    assert not (workflow / "results").exists()


def test_nested_config_overrides_on_the_command_line(workflow):
    """``--config 'generate={k: 1}'`` merges into the section (Snakemake merges nested dicts, and
    reads the braces with YAML's BaseLoader, every value a string, which the validation turns back
    into the integer): k=1 is refused as generate.k, so it reached the section, and k=3 with
    ``train={gradient_checkpointing: true}`` plans the run. Snakemake itself refuses the dotted form
    ``generate.k=3`` before the workflow is read; docs/usage.md shows the braces."""
    assert scheduled_jobs(
        workflow, "iter1", "--config", "generate={k: 3}", "train={gradient_checkpointing: true}"
    )
    proc = snakemake(workflow, "iter1", "-n", "--config", "generate={k: 1}", check=False)
    assert proc.returncode != 0
    assert "config key generate.k: 1 is less than the minimum of 2" in proc.stderr + proc.stdout
    assert not (workflow / "results").exists()


def test_missing_prompt_file_is_named(workflow):
    write_config(workflow, {"prompts": {"path": "data/nope.jsonl"}})
    proc = snakemake(workflow, "iter1", check=False)
    assert proc.returncode != 0 and "prompts.path: prompt file 'data/nope.jsonl' not found" in proc.stderr
    assert not (workflow / "results").exists()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda lines: lines[:4] + ['{"prompt": "broken"'] + lines[5:], "data/prompts.jsonl:5: invalid JSON"),
        (
            lambda lines: lines[:6] + ['{"text": "x"}'] + lines[7:],
            "data/prompts.jsonl:7: missing column(s) 'prompt'",
        ),
    ],
)
def test_malformed_prompt_file_names_file_and_line(workflow, corrupt, message):
    path = workflow / "data/prompts.jsonl"
    path.write_text("\n".join(corrupt(path.read_text().splitlines())) + "\n")
    proc = snakemake(workflow, "results/split/eval.jsonl", check=False)
    assert proc.returncode != 0
    assert message in (workflow / "logs/split/split.log").read_text()
    assert not list((workflow / "results").rglob("*.jsonl"))  # nothing half-written left behind


def test_non_utf8_prompt_file(workflow):
    path = workflow / "data/prompts.jsonl"
    path.write_bytes(path.read_bytes() + b'{"prompt": "caf\xe9"}\n')
    proc = snakemake(workflow, "results/split/eval.jsonl", check=False)
    assert proc.returncode != 0
    assert "data/prompts.jsonl:321: not valid UTF-8" in (workflow / "logs/split/split.log").read_text()


# A Snakefile of the user's that imports this workflow as a module (as snakedeploy writes one).
MODULE_SNAKEFILE = """\
configfile: "config.yaml"


module sppo:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from sppo
"""


def from_another_directory(deploy: str, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Iteration 1 of a small run in tmp_path/work, deployed as ``deploy`` says (the test below);
    where Snakemake started, the work directory and the arguments."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    shutil.copy(REPO / "data/prompts.jsonl", work / "data/prompts.jsonl")
    small = {  # wiring, not learning: a small iteration
        "iterations": 1,
        "shards": 1,
        "split": {"eval_size": 10, "max_per_iteration": 16},
        "generate": {"k": 3, "max_new_tokens": 8},
        "evaluate": {"max_new_tokens": 8},
    }
    configfile = write_config(work, {**small, "prompts": {"path": "data/prompts.jsonl"}}, name="config.yaml")
    if deploy == "snakefile":
        start = tmp_path
        args = ["-s", str(REPO / "Snakefile"), "--configfile", str(configfile), "--directory", str(work)]
    else:  # in a module, workflow.basedir is the user's directory, not the checkout
        start, args = work, []
        (work / "Snakefile").write_text(MODULE_SNAKEFILE.format(snakefile=REPO / "Snakefile"))
    snakemake(start, *args, "iter1", cores=1)
    return start, work, args


def snakefile_elsewhere(directory: Path):
    return from_another_directory("snakefile", directory)


def module_elsewhere(directory: Path):
    return from_another_directory("module", directory)


@pytest.mark.parametrize(
    "deploy",
    [
        pytest.param(run, marks=pytest.mark.early.with_args(run, lane="heavy"))
        for run in (snakefile_elsewhere, module_elsewhere)
    ],
    ids=["snakefile", "module"],
)
def test_runs_from_another_working_directory(deploy):
    """As the Snakemake catalog deploys workflows: another working directory with its own config and
    prompts (a relative prompts.path resolves there), either running the checkout's Snakefile from a
    third directory (-s … --directory …) or importing it as a module from its own Snakefile. Every
    rule finds the workflow's files; records hash them there; the audit checks this run's targets
    (iterations: 1) with this run's config. The run starts with the session (heavy lane: conftest)."""
    start, work, args = early_result(deploy, "heavy")
    assert (work / "results/iter1/model/model.safetensors").is_file()
    assert (work / "results/summary/metrics.tsv").read_text().count("\n") == 3  # header, π_0, π_1
    assert sorted(p.name for p in work.parent.iterdir()) == ["work"]  # nothing written where it started
    assert scheduled_jobs(start, *args, "iter1") == {}
    for record in ("iter1/winprob/pairs.jsonl", "iter1/model"):
        code = json.loads((work / f"results/provenance/{record}.json").read_text())["code"]
        assert code["workflow_dir"] == str(REPO) and "rules/common.smk" in code["files"], record
        assert any(name.startswith("scripts/") for name in code["files"]), record
    snakemake(start, *args, "audit")
    log = (work / "logs/audit/audit.log").read_text()
    n = int(log.splitlines()[-1].split()[1])
    assert f"audit: {n} artifacts: {n} ok" in log
    assert "results/summary/winrate.png" in log and "results/iter1/evaluate/metrics.json" in log
    assert "iter2" not in log
