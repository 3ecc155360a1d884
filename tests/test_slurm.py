"""profiles/slurm on a real SLURM cluster: every job goes through sbatch, and the artifacts equal a
local run's byte for byte.

Needs a running cluster: `.ci/slurm-up` starts a single-node one on this machine (.ci/run does so
around the test suite and stops it afterwards). Without one this test skips,
saying why; under SPPO_REQUIRE_SERVICES=1 (set by .ci/run) it fails instead.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import (
    cluster_overlay,
    copy_workflow,
    early_result,
    slurm_cluster,
    slurm_submissions,
    snakemake,
    write_config,
)

# iter1 of a tiny run: 15 SLURM jobs, a few minutes on 2 cores.
TINY = {
    "split": {"eval_size": 12, "max_per_iteration": 16},
    "generate": {"k": 3, "max_new_tokens": 8},
    "evaluate": {"max_new_tokens": 8},
}
EXPECTED_JOBS = {
    "basemodel": 1,
    "split": 1,
    "generate": 2,
    "rank": 2,
    "winprob": 1,
    "reflogp": 2,
    "reflogp_merge": 1,
    "train": 1,
    "evaluate_answers": 2,
    "evaluate": 2,
}
ARTIFACTS = [
    "results/split/iter1.jsonl",
    "results/split/eval.jsonl",
    "results/split/stats.json",
    "results/iter1/generate/shard0.jsonl",
    "results/iter1/generate/shard1.jsonl",
    "results/iter1/rank/shard0.jsonl",
    "results/iter1/rank/shard1.jsonl",
    "results/iter1/winprob/pairs.jsonl",
    "results/iter1/reflogp/shard0.jsonl",
    "results/iter1/reflogp/shard1.jsonl",
    "results/iter1/reflogp/pairs.jsonl",
    "results/iter1/model/model.safetensors",
    "results/iter0/evaluate/answers.jsonl",
    "results/iter1/evaluate/answers.jsonl",
    "results/iter0/evaluate/metrics.json",
    "results/iter1/evaluate/metrics.json",
]


def slurm_conf() -> str | None:
    """The cluster's config: $SLURM_CONF, else the one .ci/slurm-up writes, else SLURM's default."""
    if os.environ.get("SLURM_CONF"):
        return os.environ["SLURM_CONF"]
    scratch = Path(os.environ.get("SPPO_SLURM_DIR", "/tmp/sppo-slurm")) / "slurm.conf"
    return str(scratch) if scratch.is_file() else None


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    """Environment variables that reach a running SLURM cluster with an idle or mixed node."""
    return slurm_cluster(slurm_conf(), nodes=1, start=".ci/slurm-up")


def iter1_here_and_through_sbatch(directory: Path):
    """iter1 of the tiny run on this machine and through profiles/slurm, side by side: the two
    working directories and the SLURM run's process. Started when the session starts (conftest)."""
    env = {**os.environ, **slurm_cluster(slurm_conf(), nodes=1, start=".ci/slurm-up")}
    local, on_slurm = (copy_workflow(directory / name) for name in ("local", "slurm"))
    for workdir in (local, on_slurm):
        write_config(workdir, TINY)
    overlay = cluster_overlay(directory)
    with ThreadPoolExecutor(1) as pool:  # the local run proceeds while SLURM jobs queue
        local_run = pool.submit(snakemake, local, "iter1", timeout=1800)
        profiles = ("--profile", "profiles/slurm", "--profile", str(overlay))
        proc = snakemake(on_slurm, "iter1", *profiles, timeout=1800, env=env)
        local_run.result()
    return local, on_slurm, proc


@pytest.mark.early.with_args(iter1_here_and_through_sbatch)
def test_iter1_through_sbatch_equals_local_run():
    local, on_slurm, proc = early_result(iter1_here_and_through_sbatch)

    # every job went through sbatch, once, got a SLURM job id and finished in it (the plugin's log)
    submitted = slurm_submissions(proc.stderr)
    assert Counter(rule for _, _, rule in submitted) == EXPECTED_JOBS, proc.stderr[-3000:]
    assert len({job_id for job_id, _, _ in submitted}) == len(submitted)
    for _, log, rule in submitted:
        assert f"(Rule: {rule})" in log.read_text(), f"{log}: the {rule} job did not finish in SLURM"

    # the same artifacts, byte for byte
    differ = [a for a in ARTIFACTS if (local / a).read_bytes() != (on_slurm / a).read_bytes()]
    assert not differ, f"SLURM and local runs differ in {differ}"


MPI_SNAKEFILE = """
rule launch:
    output: "out.txt"
    resources: nodes=1, tasks=2, mpi="srun", mem_mb=200, runtime=5
    shell:
        'echo "batch host $(hostname) job $SLURM_JOB_ID" > {output}; '
        'srun --nodes=1 --ntasks=2 bash -c \\'echo "task $SLURM_PROCID on $(hostname)"\\' >> {output}'
"""


def test_an_mpi_job_runs_its_own_srun(cluster, tmp_path, monkeypatch):
    """What multi-node training (train.nodes > 1) builds on: a job with the "mpi" resource gets its
    shell command run on the batch host without `srun -n1`, and its own srun starts the tasks there
    (on a real cluster one torchrun per node, meeting at "$(hostname)")."""
    for key, value in cluster.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "Snakefile").write_text(MPI_SNAKEFILE)
    settings = "--slurm-status-command squeue --slurm-no-account --slurm-init-seconds-before-status-checks 3"
    snakemake(tmp_path, "--executor", "slurm", "--jobs", "1", *settings.split())
    lines = (tmp_path / "out.txt").read_text().splitlines()
    host = lines[0].split()[2]
    assert re.fullmatch(r"batch host \S+ job \d+", lines[0])
    assert sorted(lines[1:]) == [f"task 0 on {host}", f"task 1 on {host}"]
