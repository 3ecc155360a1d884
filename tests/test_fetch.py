"""Target fetch: what each recipe would fetch from the hub, the errors a gated model or an unfetched
offline run gives, and the jobs' HF_HUB_OFFLINE. No hub here: nothing is downloaded."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from conftest import snakemake, write_config
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


# AlpacaEval (alpaca_eval.*): its instructions and its GLM's table come from the hub dataset
AE = "tatsu-lab/alpaca_eval"
AE_FILE = "alpaca_eval_gpt4_baseline.json"
AE_ON = {"enabled": True, "base_url": "http://localhost:1/v1", "model": "m"}


def test_alpaca_eval_fetches_only_the_files_it_reads(monkeypatch, tmp_path):
    """With alpaca_eval.enabled the plan holds tatsu-lab/alpaca_eval with only the instructions and,
    for length_controlled_v1, df_gamed.csv (the repository also holds every model's outputs); the
    fetch asks snapshot_download for those files alone and records the commit."""
    import huggingface_hub

    def plan(**settings):
        items = fetch.plan(validate({**raw_config(), "alpaca_eval": {**AE_ON, **settings}}))
        return [(i["repo_id"], i["repo_type"], i["revision"], i["why"], i["allow_patterns"]) for i in items]

    both = "alpaca_eval.instructions, alpaca_eval.glm"
    assert plan() == [(AE, "dataset", None, both, [AE_FILE, "df_gamed.csv"])]
    minimal = (AE, "dataset", None, "alpaca_eval.instructions", [AE_FILE])
    assert plan(glm="length_controlled_minimal") == [minimal]
    # a local instruction file: only the GLM's table
    assert plan(instructions="data/prompts.jsonl") == [
        (AE, "dataset", None, "alpaca_eval.glm", ["df_gamed.csv"])
    ]
    assert plan(instructions="data/prompts.jsonl", glm="length_controlled_minimal") == []
    # a revision in the reference (HfFileSystem's form, "/" encoded) pins both files of that repository
    pinned = plan(instructions=f"hf://datasets/{AE}@refs%2Fpr%2F7/{AE_FILE}")
    assert pinned == [(AE, "dataset", "refs/pr/7", both, [AE_FILE, "df_gamed.csv"])]
    other = plan(instructions="hf://datasets/me/mine/sub/ae.jsonl", glm="length_controlled_minimal")
    assert other == [("me/mine", "dataset", None, "alpaca_eval.instructions", ["sub/ae.jsonl"])]
    assert fetch.plan(validate({**raw_config(), "alpaca_eval": {"enabled": False}})) == []

    asked = []

    def snapshot_download(repo_id, **kwargs):
        asked.append((repo_id, kwargs))
        return str(tmp_path / ("c" * 40))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    (record,) = fetch.fetch(fetch.plan(validate({**raw_config(), "alpaca_eval": AE_ON})))
    ((repo_id, kwargs),) = asked
    assert repo_id == AE and kwargs["repo_type"] == "dataset" and kwargs["revision"] is None
    assert kwargs["allow_patterns"] == [AE_FILE, "df_gamed.csv"]
    assert record["commit"] == "c" * 40 and record["allow_patterns"] == [AE_FILE, "df_gamed.csv"]


def _alpaca_eval_cache(hub_dir, commits: dict[str, dict[str, str]], main: str):
    """tatsu-lab/alpaca_eval laid out as the hub cache lays out a fetched dataset: commit → files."""
    repo = hub_dir / "datasets--tatsu-lab--alpaca_eval"
    for commit, files in commits.items():
        for name, text in files.items():
            (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
            (repo / "snapshots" / commit / name).write_text(text)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(main)


def _fetch_record(path, commit: str):
    item = {"repo_id": AE, "repo_type": "dataset", "revision": None, "why": "alpaca_eval.instructions"}
    path.write_text(json.dumps({"fetched": [{**item, "commit": commit}]}))
    return path


def test_alpaca_eval_instructions_are_read_offline_at_the_fetched_commit(tmp_path, monkeypatch):
    """The default alpaca_eval.instructions from a hub cache laid out by hand: the commit the fetch
    recorded, not the cache's main branch, offline, and the job's provenance record names it; not
    fetched, the error names the file, the repository and the fetch command."""
    import huggingface_hub.constants

    from sppo import alpaca_eval, hub
    from sppo.provenance import record

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv(hub.REVISIONS_ENV, str(tmp_path / "none.json"))  # no fetch record yet
    default = validate(raw_config())["alpaca_eval"]["instructions"]
    assert default == f"hf://datasets/{AE}/{AE_FILE}"
    missing = rf"'{AE_FILE}' of dataset '{AE}' is not in the .* snakemake --cores 1 fetch"
    with pytest.raises(FileNotFoundError, match=missing):
        alpaca_eval.load_instructions(default)

    rows = [
        {"dataset": "x", "instruction": f"Say {i}.", "output": f"{i}", "generator": "gpt4_turbo"}
        for i in "ab"
    ]
    fetched, moved_on = "a" * 40, "b" * 40
    _alpaca_eval_cache(
        tmp_path / "hub", {fetched: {AE_FILE: json.dumps(rows)}, moved_on: {AE_FILE: "[]"}}, moved_on
    )
    monkeypatch.setenv(hub.REVISIONS_ENV, str(_fetch_record(tmp_path / "revisions.json", fetched)))
    assert alpaca_eval.load_instructions(default) == rows
    (tmp_path / "out.json").write_text("[]")
    built = record.build("evaluate_alpaca_instructions", [], [str(tmp_path / "out.json")], {})
    assert built["hub"][f"datasets/{AE}@{fetched}"] == fetched
    monkeypatch.setenv(hub.REVISIONS_ENV, str(tmp_path / "none.json"))  # main: an empty list, refused
    with pytest.raises(ValueError, match="no instructions"):
        alpaca_eval.load_instructions(default)


def test_rule_evaluate_alpaca_instructions_reads_the_fetched_file_offline(workflow, tmp_path):
    """One job: rule evaluate_alpaca_instructions, the default (hub) instructions and a fetch record
    in the run, reads the recorded commit from the hub cache offline (the cache's main has moved on)
    into the artifact the AlpacaEval rules read; its provenance record names the commit."""
    rows = [
        {"dataset": "x", "instruction": f"Say {i}.", "output": i, "generator": "gpt4_turbo"} for i in "abc"
    ]
    fetched, moved_on = "a" * 40, "b" * 40
    _alpaca_eval_cache(
        tmp_path / "hub", {fetched: {AE_FILE: json.dumps(rows)}, moved_on: {AE_FILE: "[]"}}, moved_on
    )
    (workflow / "results" / "fetch").mkdir(parents=True)
    _fetch_record(workflow / "results" / "fetch" / "revisions.json", fetched)
    write_config(workflow, {"alpaca_eval": AE_ON})
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    snakemake(workflow, "results/evaluate/alpaca/instructions.json", env=env)
    assert json.loads((workflow / "results/evaluate/alpaca/instructions.json").read_text()) == rows
    record = json.loads((workflow / "results/provenance/evaluate/alpaca/instructions.json.json").read_text())
    assert record["hub"] == {f"datasets/{AE}@{fetched}": fetched}


def _df_gamed(n: int, difficulty: int) -> str:
    """alpaca_eval's df_gamed.csv in its columns (the GLM's regularisation rows: two gamed baselines
    per instruction) for ``n`` instructions: the first half easy (difficulty −``difficulty``,
    preference 0.9 in [0, 1]), the rest hard (+``difficulty``, 0.1)."""
    lines = ["model,index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline"]
    for model, sign in (("gpt4_verbose", 1), ("gpt4_concise", -1)):
        for i in range(n):
            easy = i < n // 2
            lines.append(
                f"{model},{i},{0.9 if easy else 0.1},{sign},{-difficulty if easy else difficulty},False"
            )
    return "\n".join(lines) + "\n"


def test_length_controlled_v1_reads_df_gamed_offline_at_the_fetched_commit(tmp_path, monkeypatch):
    """alpaca_eval's leaderboard GLM, run for real on 20 annotations, reads df_gamed.csv from a hub
    cache laid out by hand at the commit the fetch recorded (main has moved on to a table where every
    instruction is equally difficult); that commit's difficulty reaches the fit: the model wins the
    easy half, and the GLM's predicted preference is higher there (with main's table, or the minimal
    GLM, it is one number for all). Not fetched, offline: the error names the file and the fetch."""
    import huggingface_hub.constants
    import pandas as pd
    from alpaca_eval.metrics import glm_winrate

    from sppo import alpaca_eval, hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv(hub.REVISIONS_ENV, str(tmp_path / "none.json"))
    n = 20
    annotations = pd.DataFrame(
        {
            "instruction": [f"i{i}" for i in range(n)],
            "output_1": ["x" * (5 + i) for i in range(n)],
            "output_2": ["y" * (3 + 2 * (i % 4)) for i in range(n)],
            "generator_1": "gpt4_turbo",
            "generator_2": "m",
            "preference": [2.0 if i < n // 2 else 1.0 for i in range(n)],  # m wins the first half
        }
    )

    def lc(glm):
        with alpaca_eval.glm_tables(glm, n):
            return glm_winrate.get_length_controlled_winrate(
                annotations, glm_name=glm, save_weights_dir=None, is_warn_extreme_changes=False
            )

    with pytest.raises(FileNotFoundError, match=rf"'df_gamed.csv' of dataset '{AE}' is not in .* fetch"):
        lc("length_controlled_v1")
    fetched, moved_on = "a" * 40, "b" * 40
    tables = {fetched: {"df_gamed.csv": _df_gamed(n, 2)}, moved_on: {"df_gamed.csv": _df_gamed(n, 0)}}
    _alpaca_eval_cache(tmp_path / "hub", tables, moved_on)
    monkeypatch.setenv(hub.REVISIONS_ENV, str(_fetch_record(tmp_path / "revisions.json", fetched)))
    metrics = lc("length_controlled_v1")
    predicted = annotations["glm_preference"]
    assert predicted[: n // 2].mean() > predicted[n // 2 :].mean()  # the fetched commit's difficulty
    assert 0 < metrics["length_controlled_winrate"] < 100 and metrics["lc_standard_error"] > 1
    assert hub.snapshots_read()[f"datasets/{AE}@{fetched}"] == fetched  # what the job's record names
    # the minimal GLM reads no hub file: one prediction for every instruction (no difficulty)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    assert lc("length_controlled_minimal")["lc_standard_error"] < 1e-6
