"""Training under DeepSpeed ZeRO-3 with two CPU processes (torchrun), as the rule launches it."""

import json

import pytest
import torch
from conftest import CPU_MODEL_CONFIG, REPO, run_train, train_settings, write_with_reference_logps
from safetensors.torch import load_file

from sppo import models


@pytest.fixture
def pairs(tiny_model_dir, tmp_path):
    rows = []
    for i in range(16):
        user = {"role": "user", "content": f"Question {i}?"}
        rows.append(
            {
                "prompt": user["content"],
                "chosen": [user, {"role": "assistant", "content": "a good answer " * (1 + i % 3)}],
                "rejected": [user, {"role": "assistant", "content": "?!#" * (1 + i % 2)}],
                "id": i,
                "chosen_probs": 0.6,
                "chosen_probs_win": 0.8,
                "chosen_probs_lose": 0.2,
            }
        )
    return write_with_reference_logps(tiny_model_dir, rows, tmp_path / "pairs.jsonl")


def test_zero3_two_processes(tiny_model_dir, pairs, tmp_path):
    settings = train_settings(
        eta=10,
        global_batch_size=8,
        per_device_batch_size=2,
        num_processes=2,
        deepspeed=str(REPO / "config/deepspeed/zero3.json"),
        max_length=64,
        max_prompt_length=32,
    )
    out = tmp_path / "trained"
    log = run_train(tiny_model_dir, pairs, out, settings, CPU_MODEL_CONFIG)
    # both ranks ran, under ZeRO (the untested-optimizer notice is DeepSpeed's, for RMSprop), 2 × 2 steps
    assert "[rank 0]" in log and "[rank 1]" in log and "ZeRO" in log
    assert "16 pairs, 2 processes: 4 optimizer steps of a 4-step schedule" in log
    assert log.count("'loss':") == 4

    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(before[k].shape == after[k].shape for k in before)  # ZeRO-3 gathered full weights on save
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert json.loads((out / "sppo_train.json").read_text())["processes"] == 2
    model, _ = models.load_policy(str(out), CPU_MODEL_CONFIG)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert not list(tmp_path.glob(".trained.partial*"))
