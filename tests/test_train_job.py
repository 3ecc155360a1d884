"""Rule train's job as the rule starts it: its command, read back by sppo.train, and the provenance
record that its process 0 writes (params as the rule passes them, inputs as the rule declares them)."""

from __future__ import annotations

import shlex

import pytest
import yaml
from conftest import REPO, copy_workflow, snakemake, write_config
from test_recipes import dry_run_jobs

from sppo import train
from sppo.config import validate


def test_the_train_command_finds_its_script_from_another_directory(tmp_path):
    workflow = copy_workflow(tmp_path / "checkout")
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["prompts"]["path"] = str(workflow / "data" / "prompts.jsonl")
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(work, "-s", str(workflow / "Snakefile"), "results/iter1/model", "-n", "-p")
    (job,) = [j for j in dry_run_jobs(proc.stdout + proc.stderr) if j["rule"] == "train"]
    words = shlex.split(job["shell"])
    assert words[:2] == ["python", str(workflow / "scripts" / "train.py")], job["shell"]
    assert words[-3:] == [">", "logs/train/iter1.log", "2>&1"], job["shell"]
    args = train.parse_args(words[2:-3])
    # the params sppo.train records are the ones the rule passes, as the config gives them
    expected = validate(config)
    assert train.rule_params(args) == {
        "launcher": "python",
        "model": "results/iter0/model",
        "settings": expected["train"],
        "model_config": expected["model"],
        "seed": expected["seed"],
        "threads": expected["threads"],
    }
    assert (args.pairs, args.out, args.log_file) == (
        "results/iter1/reflogp/pairs.jsonl",
        "results/iter1/model",
        "logs/train/iter1.log",
    )
    assert (args.wildcard, args.job_threads) == (["v=", "t=1"], job["threads"])


@pytest.mark.parametrize("launch", [{"num_processes": 2}, {"nodes": 2}], ids=["torchrun", "srun-torchrun"])
def test_torchrun_hands_the_script_all_its_arguments(workflow, launch):
    """torchrun parses the script's arguments along with its own options: one that abbreviates several
    of them stops the job (it did: --log, for --log-dir and --logs-specs), one that abbreviates one
    is taken from the script."""
    from torch.distributed.run import get_args_parser

    write_config(workflow, {"train": launch})
    proc = snakemake(workflow, "results/iter1/model", "-n", "-p")
    (job,) = [j for j in dry_run_jobs(proc.stdout + proc.stderr) if j["rule"] == "train"]
    words = shlex.split(job["shell"])[:-3]  # without "> log 2>&1"
    script = words.index(str(workflow / "scripts" / "train.py"))
    args = get_args_parser().parse_args(words[words.index("torch.distributed.run") + 1 :])
    assert (args.training_script, args.training_script_args) == (words[script], words[script + 1 :])


def job_args(model: str) -> list[str]:
    return [
        *("--pairs", "results/iter1/reflogp/pairs.jsonl", "--out", "results/iter1/model"),
        *(
            "--launcher",
            "python",
            "--model",
            model,
            "--settings",
            '{"eta": 1}',
            "--model-config",
            '{"dtype": "float32"}',
        ),
        *("--seed", "7", "--threads", "2", "--log-file", "logs/train/iter1.log"),
        *("--wildcard", "t=1", "--job-threads", "4"),
    ]


def test_the_job_record_names_what_the_rule_declares(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for directory in ("results/iter0/model", "results/iter1/model", "results/iter1/reflogp"):
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / "results/iter0/model/model.safetensors").write_text("π_0")
    (tmp_path / "results/iter1/model/model.safetensors").write_text("π_1")
    (tmp_path / "results/iter1/reflogp/pairs.jsonl").write_text("{}\n")

    rec = train.job_record(
        train.parse_args(job_args("results/iter0/model")), started="2026-01-01T00:00:00+00:00"
    )
    assert rec["rule"] == "train" and rec["wildcards"] == {"t": "1"} and rec["threads"] == 4
    assert set(rec["inputs"]) == {"results/iter1/reflogp/pairs.jsonl", "results/iter0/model"}
    assert list(rec["outputs"]) == ["results/iter1/model"] and rec["log"] == ["logs/train/iter1.log"]
    assert rec["params"] == {
        "launcher": "python",
        "model": "results/iter0/model",
        "settings": {"eta": 1},
        "model_config": {"dtype": "float32"},
        "seed": 7,
        "threads": 2,
    }
    assert rec["started"] == "2026-01-01T00:00:00+00:00" and rec["finished"]

    # a hub id is no input file (as in rules/common.smk's policy_files)
    hub = train.job_record(train.parse_args(job_args("google/gemma-2-9b-it")), started=None)
    assert set(hub["inputs"]) == {"results/iter1/reflogp/pairs.jsonl"}
