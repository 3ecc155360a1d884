"""Shared fixtures: a copy of the workflow in a temporary directory, and Snakemake run as its CLI.

Snakemake runs in a subprocess (the stable surface, as Snakemake's own generated tests do). The
complete default ``iter3`` run is made once per test session and shared read-only; tests that
change or damage a run make their own (``workflow``) or copy it (``copy_run``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
import yte

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ["Snakefile", "rules", "scripts", "config", "data", "envs", "report", "profiles"]

# Model jobs must not reach a hub; the offline default never names one.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_PARTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def merge_config(base: dict, extra: dict) -> dict:
    """Merge ``extra`` into ``base`` as Snakemake merges config files: nested dicts key by key."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = value
    return base


def write_config(workdir: Path, overrides: dict | None = None, name: str = "config/config.yaml") -> Path:
    """The default config with ``overrides`` merged in (nested dicts merge key by key)."""
    config = merge_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), overrides or {})
    path = workdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: int = 900,
    env: dict | None = None,
    cores: int = 2,
) -> subprocess.CompletedProcess[str]:
    """Run ``snakemake`` in ``workdir`` with the interpreter running the tests (``env``: its
    environment, default this process's), on ``cores`` cores (1: a run of the heavy lane, below)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


def train_settings(**overrides) -> dict:
    """The offline default's validated train section (every key), with ``overrides``."""
    from sppo.config import validate

    return {**validate(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))["train"], **overrides}


def run_train(model: Path, pairs: Path, out: Path, settings: dict, model_config: dict, check=True) -> str:
    """scripts/train.py as rule train runs it (torchrun for settings["num_processes"] > 1); its log
    (with ``check``, after asserting that it succeeded)."""
    import json

    n = settings["num_processes"]
    launcher = [sys.executable] + (
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"] if n > 1 else []
    )
    args = ["--model", str(model), "--pairs", str(pairs), "--out", str(out), "--seed", "0"]
    args += ["--settings", json.dumps(settings), "--model-config", json.dumps(model_config)]
    proc = subprocess.run(
        launcher + ["scripts/train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 or not check, log[-5000:]
    return log if check else f"exit {proc.returncode}\n{log}"


def scheduled_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule → number of jobs a dry run of ``args`` would run (empty when nothing is to be done)."""
    proc = snakemake(workdir, *args, "-n", "--quiet", "rules")
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def missing_service(reason: str) -> None:
    """A test's service (a SLURM cluster, a browser) is not there: skip, printing ``reason``, or fail
    where SPPO_REQUIRE_SERVICES=1 (.ci/run sets it, so CI runs every such test or fails)."""
    if os.environ.get("SPPO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (SPPO_REQUIRE_SERVICES=1: required here)")
    pytest.skip(reason)


def slurm_cluster(conf: str | None, nodes: int, start: str) -> dict[str, str]:
    """Environment variables that reach the SLURM cluster of ``conf`` (None: SLURM's default), which
    must be running with at least ``nodes`` idle or mixed nodes.

    Without one the calling test skips, naming ``start`` (the script that starts such a cluster, as
    root), or fails under SPPO_REQUIRE_SERVICES=1 (:func:`missing_service`).
    """
    hint = f"start one with {start} (as root; .ci/run does)"
    if conf and not Path(conf).is_file():
        missing_service(f"no SLURM config at {conf}: {hint}")
    env = {"SLURM_CONF": conf} if conf else {}
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=20,
        )
    except FileNotFoundError:
        missing_service(f"SLURM is not installed (no sinfo): {hint}")
    except subprocess.TimeoutExpired:
        missing_service(f"no SLURM controller answers (sinfo timed out): {hint}")
    usable = {node for node, state in map(str.split, proc.stdout.splitlines()) if state in ("idle", "mix")}
    if proc.returncode != 0 or len(usable) < nodes:
        sinfo = f"{proc.stdout.strip()} {proc.stderr.strip()}"
        missing_service(f"fewer than {nodes} usable SLURM nodes (sinfo: {sinfo}): {hint}")
    return env


def slurm_submissions(stderr: str) -> list[tuple[str, Path, str]]:
    """(SLURM job id, the plugin's log of the job, rule) of each job a SLURM run says it submitted."""
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", stderr)
    return [(job_id, Path(log), re.search(r"/rule_(\w+)/", log).group(1)) for job_id, log in submitted]


def cluster_overlay(tmp_path: Path) -> Path:
    """profiles/slurm adapted to the test clusters: the same per-rule settings with memory they have.

    A later --profile replaces whole top-level keys, so the overlay repeats the resources of
    profiles/slurm, cutting only mem_mb; the rest (executor, retries, requeue, runtime growing
    with the attempt) comes from profiles/slurm unchanged.
    """
    with open(REPO / "profiles" / "slurm" / "config.yaml") as fh:
        main = yte.process_yaml(fh, require_use_yte=True)
    overlay = {
        "slurm-init-seconds-before-status-checks": 6,
        "slurm-status-command": "squeue",  # no accounting database
        "slurm-no-account": True,
        "slurm-keep-successful-logs": True,
        "default-resources": {**main["default-resources"], "mem_mb": 1000},
        "set-resources": {rule: {**res, "mem_mb": 1000} for rule, res in main["set-resources"].items()},
    }
    path = tmp_path / "test-cluster" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(overlay, sort_keys=False))
    return path.parent


@pytest.fixture
def workflow(tmp_path) -> Path:
    """A fresh copy of the workflow with the default config."""
    return copy_workflow(tmp_path / "wf")


def build_finished_run(directory: Path) -> Path:
    """The default ``iter3`` run, complete, in ``directory``/wf; and a pristine copy of it beside, in
    which no test runs anything, for :func:`finished_copy` (first in the heavy lane, conftest below)."""
    workdir = copy_workflow(directory / "wf")
    snakemake(workdir, "iter3")
    shutil.copytree(workdir, directory / "pristine", symlinks=True)
    return workdir


def finished_copy(dest: Path) -> Path:
    """A private copy of the finished run at ``dest`` (results, logs and Snakemake's metadata,
    timestamps kept), made from its pristine copy, so never while a test runs Snakemake in it."""
    shutil.copytree(early_result(build_finished_run, "heavy").parent / "pristine", dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def finished_run() -> Path:
    """The default ``iter3`` run, complete, started with the session. Shared: do not modify (use
    copy_run)."""
    return early_result(build_finished_run, "heavy")


@pytest.fixture
def copy_run(finished_run, tmp_path):
    """A private copy of the finished run (:func:`finished_copy`)."""
    return lambda: finished_copy(tmp_path / "run")


TINY_MODEL = {
    "architecture": "llama",
    "vocab_size": 400,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_layers": 2,
    "num_heads": 4,
    "max_position_embeddings": 512,
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny Llama and its tokenizer built by the basemodel stage from the bundled prompts."""
    from sppo import basemodel, split

    out = tmp_path_factory.mktemp("tiny") / "model"
    basemodel.build(
        split.read_local(REPO / "data" / "prompts.jsonl", "prompt"), TINY_MODEL, seed=0, out_dir=out
    )
    return out


TINY_PAIRS = 4  # rows of tiny_pairs
CPU_MODEL_CONFIG = {
    "dtype": "float32",
    "device": "cpu",
    "trust_remote_code": False,
    "revision": None,
    "attn_implementation": "auto",
}


def write_with_reference_logps(model_dir: Path, rows: list[dict], path: Path) -> Path:
    """``rows`` (winprob pairs) with the tiny model's reference log-probs, written to ``path`` as rule
    reflogp writes them (lengths 64 / 32, each side cut alone)."""
    from sppo import io, models, reflogp

    model, tokenizer = models.load_policy(str(model_dir), CPU_MODEL_CONFIG)
    io.write_jsonl(
        path,
        reflogp.compute(
            model,
            tokenizer,
            rows,
            max_length=64,
            max_prompt_length=32,
            truncation="response",
            responses="pair",
            batch_size=8,
        ),
    )
    return path


@pytest.fixture(scope="session")
def tiny_pairs(tiny_model_dir, tmp_path_factory) -> Path:
    """TINY_PAIRS pairs with the tiny model's reference log-probs (reflogp), as rule train reads them;
    prompts and responses fit max_length 64, max_prompt_length 32."""
    rows = []
    for i in range(TINY_PAIRS):
        user = {"role": "user", "content": f"Question {i}?"}
        rows.append(
            {
                "prompt": user["content"],
                "chosen": [user, {"role": "assistant", "content": "a good answer " * (1 + i)}],
                "rejected": [user, {"role": "assistant", "content": "?!#" * (1 + i % 2)}],
                "id": i,
                "chosen_probs": 0.6,
                "chosen_probs_win": 0.6 + 0.1 * i,
                "chosen_probs_lose": 0.4 - 0.1 * i,
            }
        )
    return write_with_reference_logps(
        model_dir=tiny_model_dir, rows=rows, path=tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    )


# ---- work started when the session starts
# Workflow runs that a test only reads afterwards start in a thread as soon as the session has
# collected its tests, and overlap the tests before it. Such a test is marked
# ``@pytest.mark.early.with_args(fn)`` (or ``…with_args(fn, lane="heavy")``): ``fn(directory)``
# starts then, and the test reads what it returned with ``early_result(fn)``. What ``fn`` raises (a
# skip or failure from ``missing_service`` included) is raised in the test. Not under --collect-only.
# Two lanes:
# - "wait" (the default), two at a time: runs that mostly wait. The SLURM tests' executor plugin
#   polls the queue at intervals that grow while no job has finished, and the jobs are short.
# - "heavy", one at a time, in the order of the tests: runs that compute. The suite alone kept
#   1.24 of the 2 cores busy (`time -v` of .ci/run: 2,385 s of CPU in 1,916 s), mostly one job or
#   one test at a time, so the second core does these meanwhile, on one core (``cores=1``): on
#   two, the runs and the tests' own two torch threads overran the cores, which cost more CPU time
#   (2,836 s) than the overlap won. The first, the shared finished run, has both cores, while the
#   tests before the first that reads it are short. The shared finished run
#   (``finished_run``) is the lane's first whenever a collected test reads it; a test whose heavy run
#   starts from a copy of it (``finished_copy``) asks for ``finished_run`` too, so it is there.
_POOLS = {
    lane: ThreadPoolExecutor(max_workers=workers, thread_name_prefix=lane)
    for lane, workers in (("wait", 2), ("heavy", 1))
}
_EARLY: dict = {}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "early(fn, lane='wait'): start fn(directory) when the session starts (conftest)"
    )


def _start(fn, lane: str) -> None:
    if fn not in _EARLY:
        directory = Path(tempfile.mkdtemp(prefix=f"sppo-early-{fn.__name__}-"))
        _EARLY[fn] = (_POOLS[lane].submit(fn, directory), directory)


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    if any("finished_run" in item.fixturenames for item in session.items):
        _start(build_finished_run, "heavy")  # first: heavy runs that copy it ask for finished_run
    for item in session.items:
        marker = item.get_closest_marker("early")
        if marker:
            _start(marker.args[0], marker.kwargs.get("lane", "wait"))


def early_result(fn, lane: str = "wait"):
    """What ``fn`` returned (started when the session started; started now in ``lane`` if it was not)."""
    if fn not in _EARLY and threading.current_thread().name.startswith(f"{lane}_"):
        # it would queue behind the run that waits for it
        raise RuntimeError(f"{fn.__name__} was not started before a run of its lane asked for it (conftest)")
    _start(fn, lane)
    return _EARLY[fn][0].result()


def pytest_sessionfinish(session):
    for pool in _POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    for _, directory in _EARLY.values():
        shutil.rmtree(directory, ignore_errors=True)
