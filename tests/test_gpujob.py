"""GPU jobs off SLURM: each running job gets GPUs of its own (sppo.gpujob), and node-local caches.

No GPU is needed: the pool is the config's local_gpus, and what is checked is the device sets the
jobs were given (CUDA_VISIBLE_DEVICES) while they ran at the same time.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from itertools import combinations

import pytest
from conftest import snakemake

from sppo import gpujob


def test_pool_is_the_config_else_cuda_visible_devices_else_the_drivers_gpus(tmp_path):
    nvidia = tmp_path / "gpus"
    for bus in ("0000:01:00.0", "0000:41:00.0", "0000:81:00.0"):
        (nvidia / bus).mkdir(parents=True)
    assert gpujob.machine_gpus([3, 5], {"CUDA_VISIBLE_DEVICES": "0,1"}, nvidia) == ["3", "5"]
    assert gpujob.machine_gpus(None, {"CUDA_VISIBLE_DEVICES": "2, 3"}, nvidia) == ["2", "3"]
    assert gpujob.machine_gpus(None, {}, nvidia) == ["0", "1", "2"]
    assert gpujob.machine_gpus(None, {}, tmp_path / "no-driver") == []


def test_a_slurm_job_exports_no_pool(tmp_path):
    env = {gpujob.POOL_ENV: "0,1", gpujob.SLOTS_ENV: "x"}  # inherited from the submitting shell
    gpujob.export_settings({"local_gpus": [0, 1], "node_cache_dir": None}, False, tmp_path, env)
    assert gpujob.POOL_ENV not in env and gpujob.SLOTS_ENV not in env
    gpujob.export_settings({"local_gpus": [0, 1], "node_cache_dir": "$X/c"}, True, tmp_path, env)
    assert env[gpujob.POOL_ENV] == "0,1" and env[gpujob.SLOTS_ENV] == str(tmp_path.absolute())
    assert env[gpujob.CACHE_ENV] == "$X/c"  # expanded by the job, on its node
    env = {"CUDA_VISIBLE_DEVICES": "4,5"}  # as SLURM set it
    assert gpujob.prepare(2, env) == [] and env["CUDA_VISIBLE_DEVICES"] == "4,5"


def test_caches_go_below_tmpdir_or_the_configured_folder_unless_set(monkeypatch):
    user = f"sppo-{__import__('getpass').getuser()}"
    env = {"TMPDIR": "/node/tmp", "TRITON_CACHE_DIR": "/mine"}
    assert gpujob.node_local_caches(env) == {
        "VLLM_CACHE_ROOT": f"/node/tmp/{user}/vllm",
        "TORCH_EXTENSIONS_DIR": f"/node/tmp/{user}/torch_extensions",
    }
    assert env["TRITON_CACHE_DIR"] == "/mine"
    env = {gpujob.CACHE_ENV: "$LOCAL/c", "LOCAL": "/scratch", "TMPDIR": "/node/tmp"}
    gpujob.node_local_caches(env)
    assert env["VLLM_CACHE_ROOT"] == f"/scratch/c/{user}/vllm"
    env = {gpujob.CACHE_ENV: ""}  # node_cache_dir null, no TMPDIR: the temp folder
    monkeypatch.delenv("TMPDIR", raising=False)
    gpujob.node_local_caches(env)
    assert env["TRITON_CACHE_DIR"].startswith("/tmp/")


def test_slots_are_taken_once_and_freed_when_closed(tmp_path):
    pool = ["0", "1", "2"]
    first, fds = gpujob.acquire(2, pool, tmp_path)
    second, fds2 = gpujob.acquire(1, pool, tmp_path)
    assert first == ["0", "1"] and second == ["2"]
    os.close(fds[0])  # what the end of a job's process does
    third, fds3 = gpujob.acquire(1, pool, tmp_path, poll=0.01)
    assert third == ["0"]
    for fd in (fds[1], *fds2, *fds3):
        os.close(fd)
    with pytest.raises(ValueError, match="asks for 4 GPUs, but this machine's pool has 3"):
        gpujob.acquire(4, pool, tmp_path)


SNAKEFILE = """
import sys
from sppo import gpujob

# as rules/common.smk does
SETTINGS = {{"local_gpus": [0, 1, 2], "node_cache_dir": None}}
gpujob.export_settings(SETTINGS, not workflow.remote_exec, ".snakemake/gpu-slots")
JOBS = {jobs}


rule all:
    input:
        [f"out/{{name}}.json" for name in JOBS],


rule script_job:  # as the stage scripts do: sppo.job.start(..., gpus=N)
    output:
        "out/s{{i}}.json",
    log:
        "logs/s{{i}}.log",
    resources:
        gpu=lambda wildcards: JOBS[f"s{{wildcards.i}}"],
    script:
        "record.py"


rule shell_job:  # as rule train does: python -m sppo.gpujob N -- COMMAND
    output:
        "out/h{{i}}.json",
    log:
        "logs/h{{i}}.log",
    resources:
        gpu=lambda wildcards: JOBS[f"h{{wildcards.i}}"],
    shell:
        "{python} -m sppo.gpujob {{resources.gpu}} -- {python} record.py {{output}} > {{log}} 2>&1"
"""

RECORD = """
import json, os, sys, time

if "snakemake" in globals():
    from sppo import job

    job.start(snakemake.log[0], 1, gpus=snakemake.resources.gpu)
    out = snakemake.output[0]
else:
    out = sys.argv[1]
started = time.time()
time.sleep(1.5)
record = {"devices": os.environ["CUDA_VISIBLE_DEVICES"], "start": started, "end": time.time()}
if out.endswith("s3.json"):
    sys.exit("a job that fails while holding its GPU")
os.makedirs("out", exist_ok=True)
with open(out, "w") as f:
    json.dump(record, f)
"""


def test_concurrent_local_jobs_get_disjoint_gpus(tmp_path):
    # 3 GPUs, jobs asking 1 or 2; one of them (s3) fails while holding its GPU
    jobs = {"s0": 1, "s1": 2, "s2": 1, "s3": 1, "h0": 2, "h1": 1, "h2": 1, "h3": 2}
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(jobs=jobs, python=sys.executable))
    (tmp_path / "record.py").write_text(textwrap.dedent(RECORD))
    args = ("--cores", "4", "--resources", "gpu=3", "--keep-going")
    proc = snakemake(tmp_path, *args, check=False, timeout=300)
    assert proc.returncode != 0 and "s3" in proc.stderr  # the failing job, and only it
    ran = [name for name in jobs if name != "s3"]
    runs = {name: json.loads((tmp_path / "out" / f"{name}.json").read_text()) for name in ran}
    for name, run in runs.items():
        devices = run["devices"].split(",")
        assert len(devices) == jobs[name] and set(devices) <= {"0", "1", "2"}, (name, run)
    overlapping = [
        (a, b)
        for a, b in combinations(runs, 2)
        if runs[a]["start"] < runs[b]["end"] and runs[b]["start"] < runs[a]["end"]
    ]
    assert overlapping, runs  # jobs did run at the same time
    for a, b in overlapping:
        assert not set(runs[a]["devices"].split(",")) & set(runs[b]["devices"].split(",")), (a, b, runs)
    assert "GPUs of this job: CUDA_VISIBLE_DEVICES=" in (tmp_path / "logs" / "h0.log").read_text()


PROBE = """
import torch

asked = []
for name in ("is_available", "device_count", "init", "current_device"):
    real = getattr(torch.cuda, name)
    setattr(torch.cuda, name, lambda *a, _n=name, _f=real, **k: asked.append(_n) or _f(*a, **k))
import lm_eval
from sppo import evaluate, generate, io, job, leaderboard, models, rank, reflogp
from sppo.judges import load_judge
print(asked)
"""


def test_the_gpu_scripts_imports_leave_cuda_alone():
    """CUDA reads CUDA_VISIBLE_DEVICES once, when it starts: a script's job.start(gpus=N) sets it after
    the script's imports, which must therefore not start CUDA (no torch.cuda query at import)."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout
