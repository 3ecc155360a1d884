"""Target fetch: what each recipe would fetch from the hub, the errors a gated model or an unfetched
offline run gives, and the jobs' HF_HUB_OFFLINE. No hub here: nothing is downloaded."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from conftest import snakemake
from test_recipes import dry_run_jobs, raw_config, recipe

from sppo import fetch, models
from sppo.config import validate

SNORKEL = ("snorkelai/Snorkel-Mistral-PairRM-DPO-Dataset", "dataset", "prompts.dataset")
PAIRRM = ("llm-blender/PairRM", "model", "judge.pairrm.path")


def planned(config: dict) -> list[tuple]:
    return [(i["repo_id"], i["repo_type"], i["why"]) for i in fetch.plan(validate(config))]


@pytest.mark.parametrize(
    "name, base",
    [
        ("gemma-2-9b-it", "google/gemma-2-9b-it"),
        ("mistral-7b-instruct-v0.2", "mistralai/Mistral-7B-Instruct-v0.2"),
        ("llama-3-8b-instruct", "meta-llama/Meta-Llama-3-8B-Instruct"),
        ("llama-3.2-1b-instruct-1gpu", "meta-llama/Llama-3.2-1B-Instruct"),
    ],
)
def test_a_recipe_fetches_its_model_prompts_and_judge(name, base):
    assert planned(raw_config(recipe(name))) == [(base, "model", "model.base"), SNORKEL, PAIRRM]


def test_the_offline_default_fetches_nothing_and_local_paths_are_not_fetched(tmp_path):
    assert planned(raw_config()) == []
    config = raw_config(recipe("gemma-2-9b-it"))
    config["model"]["base"] = str(tmp_path)  # a local model directory
    config["judge"]["eval"] = "reward_model"
    config["judge"]["reward_model"] = {"path": "OpenAssistant/reward-model-deberta-v3-large-v2"}
    rm = ("OpenAssistant/reward-model-deberta-v3-large-v2", "model", "judge.reward_model.path")
    assert planned(config) == [SNORKEL, PAIRRM, rm]


def test_jobs_run_offline_only_when_the_run_reads_the_hub():
    items = fetch.plan(validate(raw_config(recipe("gemma-2-9b-it"))))
    env = {}
    assert fetch.export_offline(items, True, env) and env == {"HF_HUB_OFFLINE": "1"}
    env = {"HF_HUB_OFFLINE": "0"}  # the user's own setting wins
    assert not fetch.export_offline(items, True, env) and env == {"HF_HUB_OFFLINE": "0"}
    env = {}
    assert not fetch.export_offline([], True, env) and not fetch.export_offline(items, False, env)
    assert env == {}


def test_a_gated_model_is_named_with_what_to_do():
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    item = fetch.plan(validate(raw_config(recipe("gemma-2-9b-it"))))[0]
    url = "https://huggingface.co/api/models/google/gemma-2-9b-it"
    response = httpx.Response(403, request=httpx.Request("GET", url))
    gated = GatedRepoError("403 Client Error: Cannot access gated repo", response=response)
    error = fetch.explain(item, gated)
    assert str(error).startswith("fetch: google/gemma-2-9b-it (model.base) is gated: accept its licence at ")
    assert "https://huggingface.co/google/gemma-2-9b-it" in str(error) and "hf auth login" in str(error)
    dataset = fetch.plan(validate(raw_config(recipe("gemma-2-9b-it"))))[1]
    error = fetch.explain(dataset, RepositoryNotFoundError("401", response=response))
    assert "snorkelai/Snorkel-Mistral-PairRM-DPO-Dataset (prompts.dataset) was not found" in str(error)
    assert "https://huggingface.co/datasets/snorkelai/" in str(error)


def test_an_unfetched_model_offline_fails_naming_it_and_the_fetch(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # empty
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    settings = {"revision": None, "trust_remote_code": False, "dtype": "bfloat16", "device": "cpu"}
    with pytest.raises(FileNotFoundError) as error:
        models.load_tokenizer("google/gemma-2-9b-it", settings)
    assert "model 'google/gemma-2-9b-it' is not in the Hugging Face hub cache" in str(error.value)
    assert "./run snakemake --cores 1 fetch --configfile" in str(error.value)


def test_fetch_asks_for_no_gpu_and_runs_online(workflow):
    args = ("--profile", "profiles/slurm", "--configfile", "config/recipes/gemma-2-9b-it.yaml", "-p")
    proc = snakemake(workflow, "fetch", *args, "-n")
    (job,) = dry_run_jobs(proc.stdout + proc.stderr)
    assert job["rule"] == "fetch" and "gpu" not in job["resources"]
    assert job["shell"].startswith(f"HF_HUB_OFFLINE=0 python {workflow}/scripts/fetch.py --plan ")


def test_split_reads_a_fetched_dataset_from_the_hub_cache_offline(tmp_path, monkeypatch):
    """A dataset laid out as the hub cache lays out a fetched dataset repository (README configs naming
    the split files), read by the split offline; without it, the error names it and the fetch."""
    import huggingface_hub.constants

    from sppo import split

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    missing = r"dataset 'owner/prompts' is not in the .* snakemake --cores 1 fetch"
    with pytest.raises(FileNotFoundError, match=missing):
        split.load_splits("owner/prompts", ["train_iteration_1"], "prompt")
    repo = tmp_path / "hub" / "datasets--owner--prompts"
    snapshot = repo / "snapshots" / ("c" * 40)
    (snapshot / "data").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40)
    readme = "---\nconfigs:\n- config_name: default\n  data_files:\n"
    for name, rows in {"train_iteration_1": ["a", "b"], "test_iteration_1": ["c"]}.items():
        readme += f"  - split: {name}\n    path: data/{name}.jsonl\n"
        lines = [f'{{"prompt": "{p}", "other": 1}}' for p in rows]
        (snapshot / "data" / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    (snapshot / "README.md").write_text(readme + "---\n")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    got = split.load_splits("owner/prompts", ["train_iteration_1", "test_iteration_1"], "prompt")
    assert got == {"train_iteration_1": ["a", "b"], "test_iteration_1": ["c"]}
    # the job's provenance record names the commit it read
    from sppo.provenance import record

    (tmp_path / "out.txt").write_text("x")
    built = record.build("split", [], [str(tmp_path / "out.txt")], {"dataset": "owner/prompts"})
    assert built["hub"]["datasets/owner/prompts"] == "c" * 40


LOAD = """
from sppo import hub, models

config = {"revision": None, "trust_remote_code": False}
print(type(models.load_tokenizer("owner/tiny", config)).__name__, hub.snapshots_read())
"""


def test_jobs_read_the_commit_the_fetch_recorded(tiny_model_dir, tmp_path):
    """The cache's main branch has moved on to a commit without a tokenizer; with the fetch's record
    the job loads the recorded commit, offline; without the record it gets main and fails."""
    import shutil
    import subprocess
    import sys

    repo = tmp_path / "hub" / "models--owner--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / ("a" * 40))
    (repo / "snapshots" / ("b" * 40)).mkdir()
    shutil.copy(tiny_model_dir / "config.json", repo / "snapshots" / ("b" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    record = tmp_path / "revisions.json"
    item = {"repo_id": "owner/tiny", "repo_type": "model", "revision": None, "why": "model.base"}
    record.write_text(json.dumps({"fetched": [{**item, "commit": "a" * 40}]}))
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    run = [sys.executable, "-c", LOAD]
    pinned = subprocess.run(
        run, env={**env, "SPPO_HUB_REVISIONS": str(record)}, capture_output=True, text=True
    )
    assert pinned.returncode == 0, pinned.stderr[-3000:]
    assert pinned.stdout.split(" ", 1)[1].strip() == str({f"owner/tiny@{'a' * 40}": "a" * 40})
    unpinned = subprocess.run(run, env=env, capture_output=True, text=True)
    assert unpinned.returncode != 0 and "tokenizer" in unpinned.stderr  # main has no tokenizer files


def _tasks_dir(tmp_path):
    """lm-eval task YAMLs (tests/test_leaderboard.py's: a group of a multiple-choice and a generative
    task) over a local JSON Lines file, and a task over a file that is not there."""
    from test_leaderboard import MC_TASK, write_tasks

    directory = write_tasks(tmp_path / "tasks")
    broken = MC_TASK.format(data=directory / "missing.jsonl").replace("sppo_tiny_mc", "sppo_broken")
    (directory / "broken.yaml").write_text(broken)
    return directory


def test_the_leaderboard_tasks_datasets_are_prepared_by_the_fetch(tmp_path, monkeypatch):
    """With leaderboard.enabled the plan holds lm-eval's tasks; the fetch builds them, which writes the
    prepared datasets into the datasets cache (where offline jobs read them), and records what each
    task reads. A dataset that cannot be had fails the fetch naming the tasks and what to do."""
    import datasets.config

    config = raw_config(recipe("gemma-2-9b-it"))
    config["leaderboard"] = {"enabled": True}
    (item,) = [i for i in fetch.plan(validate(config)) if i["repo_type"] == fetch.LM_EVAL]
    assert (item["tasks"], item["include_path"], item["why"]) == (["leaderboard"], None, "leaderboard.tasks")

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    board = {"enabled": True, "tasks": ["sppo_tiny_suite"], "include_path": str(_tasks_dir(tmp_path))}
    plan = fetch.plan(validate({**raw_config(), "leaderboard": board}))
    (record,) = fetch.fetch(plan)
    tasks = [(d["task"], d["dataset"]) for d in record["datasets"]]
    assert tasks == [("sppo_tiny_gen", "json"), ("sppo_tiny_mc", "json")]
    assert list((tmp_path / "datasets" / "json").rglob("*.arrow")), "no prepared copy in the datasets cache"

    plan = fetch.plan(validate({**raw_config(), "leaderboard": {**board, "tasks": ["sppo_broken"]}}))
    with pytest.raises(RuntimeError, match=r"lm-eval tasks sppo_broken \(leaderboard.tasks\) could not be"):
        fetch.fetch(plan)
