"""Training under DeepSpeed ZeRO-3 with two CPU processes (torchrun), as the rule launches it."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from safetensors.torch import load_file

from sppo import io, models, reflogp

MODEL_CONFIG = {"dtype": "float32", "device": "cpu", "trust_remote_code": False, "revision": None}


@pytest.fixture
def pairs(tiny_model_dir, tmp_path):
    model, tokenizer = models.load_policy(str(tiny_model_dir), MODEL_CONFIG)
    rows = []
    for i in range(16):
        user = {"role": "user", "content": f"Question {i}?"}
        rows.append(
            {
                "prompt": user["content"],
                "chosen": [user, {"role": "assistant", "content": "a good answer " * (1 + i % 3)}],
                "rejected": [user, {"role": "assistant", "content": "?!#" * (1 + i % 2)}],
                "chosen_probs_win": 0.8,
                "chosen_probs_lose": 0.2,
            }
        )
    path = tmp_path / "pairs.jsonl"
    io.write_jsonl(
        path,
        reflogp.compute(
            model, tokenizer, rows, max_length=64, max_prompt_length=32, truncation="response", batch_size=8
        ),
    )
    return path


def test_zero3_two_processes(tiny_model_dir, pairs, tmp_path):
    settings = {
        "eta": 10,
        "learning_rate": 1e-3,
        "optimizer": "rmsprop",
        "lr_scheduler": "linear",
        "warmup_ratio": 0.1,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "global_batch_size": 8,
        "per_device_batch_size": 2,
        "num_processes": 2,
        "deepspeed": str(REPO / "config/deepspeed/zero3.json"),
        "schedule_epochs": 2,
        "stop_epochs": None,
        "max_length": 64,
        "max_prompt_length": 32,
        "truncation": "response",
        "bf16": False,
        "gradient_checkpointing": False,
        "logging_steps": 1,
    }
    out = tmp_path / "trained"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "scripts/train.py",
        "--model",
        str(tiny_model_dir),
        "--pairs",
        str(pairs),
        "--out",
        str(out),
        "--settings",
        json.dumps(settings),
        "--model-config",
        json.dumps(MODEL_CONFIG),
        "--seed",
        "0",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    # both ranks ran, under ZeRO (the untested-optimizer notice is DeepSpeed's, for RMSprop), 2 × 2 steps
    assert "[rank 0]" in log and "[rank 1]" in log and "ZeRO" in log
    assert "16 pairs, 2 processes: 4 optimizer steps of a 4-step schedule" in log
    assert log.count("'loss':") == 4

    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(before[k].shape == after[k].shape for k in before)  # ZeRO-3 gathered full weights on save
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert json.loads((out / "sppo_train.json").read_text())["processes"] == 2
    model, _ = models.load_policy(str(out), MODEL_CONFIG)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert not list(tmp_path.glob(".trained.partial*"))
