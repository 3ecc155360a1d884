"""Multi-node training on a real two-node SLURM cluster: with train.nodes 2, profiles/slurm runs
rule train as one sbatch job over both nodes (srun starts one torchrun per node, DeepSpeed ZeRO-3
over gloo), and π_1 equals the π_1 of two processes on one node with the same global batch.

Needs the cluster of `.ci/slurm2-up` (two slurmd in network namespaces of their own on this
machine; .ci/run starts it around the test suite and stops it afterwards). Without it this test skips,
saying why; under SPPO_REQUIRE_SERVICES=1 (set by .ci/run) it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import (
    cluster_overlay,
    copy_workflow,
    early_result,
    slurm_cluster,
    slurm_submissions,
    snakemake,
    write_config,
)
from safetensors.torch import load_file

NODES = ["sppo2-n1", "sppo2-n2"]  # the node names .ci/slurm2-up gives its slurmd
TINY = {  # iter1 of a tiny run, as in test_slurm.py: 16 pairs, one optimizer step per epoch
    "split": {"eval_size": 12, "max_per_iteration": 16},
    "generate": {"k": 3, "max_new_tokens": 8},
    "evaluate": {"max_new_tokens": 8},
}
ZERO3 = "config/deepspeed/zero3.json"
# Both runs have world size 2 (per-device batch 8, global batch 16, no accumulation), one torch
# thread per process, and rank r reads the same data shard in both. Every gloo reduction (ZeRO-3's
# reduce-scatter of gradients, all-reduce of the loss) then sums two addends, and a + b is the same
# float in either order, so π_1 must agree bit for bit: the tolerance is zero. With three or more
# ranks the order of a sum matters ((a + b) + c ≠ a + (b + c)) and a comparison would need one.


def one_node_then_two_nodes(directory: Path):
    """π_1 of iter1 trained on this machine by torchrun with two processes (the reference), then iter1
    of the same run through SLURM with train over two nodes: the two working directories, the SLURM
    run's process and its environment. Started when the session starts (conftest)."""
    conf = Path(os.environ.get("SPPO_SLURM2_DIR", "/tmp/sppo-slurm2")) / "slurm.conf"
    env = {**os.environ, **slurm_cluster(str(conf), nodes=2, start=".ci/slurm2-up")}
    one_node = copy_workflow(directory / "one-node")
    write_config(one_node, {**TINY, "train": {"num_processes": 2, "deepspeed": ZERO3}})
    snakemake(one_node, "results/iter1/model", timeout=1800)

    # what π_1 needs is there, so train and what follows run through SLURM
    two_nodes = directory / "two-nodes"
    shutil.copytree(one_node, two_nodes, symlinks=True)
    write_config(two_nodes, {**TINY, "train": {"num_processes": 1, "nodes": 2, "deepspeed": ZERO3}})
    shutil.rmtree(two_nodes / "results/iter1/model")
    profiles = ("--profile", "profiles/slurm", "--profile", str(cluster_overlay(directory)))
    proc = snakemake(two_nodes, "iter1", *profiles, timeout=1800, env=env)
    # SLURM forgets a finished job after MinJobAge (300 s by default), long before the test's turn
    # may come: what slurmctld says of each job, asked now
    shown = {
        job_id: subprocess.run(
            ["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True, env=env
        ).stdout
        for job_id, _, _ in slurm_submissions(proc.stderr)
    }
    return one_node, two_nodes, proc, shown


@pytest.mark.early.with_args(one_node_then_two_nodes)
def test_train_on_two_nodes_equals_one_node():
    one_node, two_nodes, proc, shown = early_result(one_node_then_two_nodes)

    # one sbatch job for train, finished in SLURM, allocated both nodes
    train_jobs = [(job_id, log) for job_id, log, rule in slurm_submissions(proc.stderr) if rule == "train"]
    assert len(train_jobs) == 1, proc.stderr[-3000:]
    job_id, slurm_log = train_jobs[0]
    assert "(Rule: train)" in slurm_log.read_text(), f"{slurm_log}: the train job did not finish in SLURM"
    job = shown[job_id]
    assert "NumNodes=2 " in job and "NodeList=sppo2-n[1-2] " in job, job

    # two ranks joined, one on each node, and trained to the end
    train_log = (two_nodes / "logs/train/iter1.log").read_text()
    ranks = dict(re.findall(r"\] sppo\.train INFO process (\d) of 2 on (\S+)", train_log))
    assert sorted(ranks) == ["0", "1"] and sorted(ranks.values()) == NODES, train_log[-3000:]
    settings = json.loads((two_nodes / "results/iter1/model/sppo_train.json").read_text())
    assert settings["processes"] == 2

    # π_1 from two nodes equals π_1 from one node bit for bit, and differs from π_0
    two, one = (load_file(w / "results/iter1/model/model.safetensors") for w in (two_nodes, one_node))
    base = load_file(one_node / "results/iter0/model/model.safetensors")
    assert two.keys() == one.keys() == base.keys()
    differ = {k: (two[k] - one[k]).abs().max().item() for k in two if not torch.equal(two[k], one[k])}
    assert not differ, f"π_1 from two nodes differs from π_1 from one node (max abs difference): {differ}"
    assert any(not torch.equal(two[k], base[k]) for k in two)
