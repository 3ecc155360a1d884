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


def zero3_settings(**overrides) -> dict:
    """Two processes under config/deepspeed/zero3.json, 2 pairs each per micro-batch, 8 per step."""
    return train_settings(
        eta=10,
        global_batch_size=8,
        per_device_batch_size=2,
        num_processes=2,
        deepspeed=str(REPO / "config/deepspeed/zero3.json"),
        max_length=64,
        max_prompt_length=32,
        **overrides,
    )


def test_zero3_two_processes(tiny_model_dir, pairs, tmp_path):
    settings = zero3_settings()
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


@pytest.fixture
def nan_model(tiny_model_dir, pairs, tmp_path):
    """The tiny model with its embeddings untied and NaN in the input embedding of the last token
    id that no pair uses: the forward pass never reads that row and its gradient is 0, so training
    runs with finite losses and gradient norms and the NaN survives to the end. The row lies in the
    second half of the flattened weight, which ZeRO-3 gives to process 1 of 2."""
    from sppo.imports import without_sklearn
    from sppo.logprobs import collate_groups, encode_rows

    with without_sklearn():
        from transformers import AutoModelForCausalLM

    model, tokenizer = models.load_policy(str(tiny_model_dir), CPU_MODEL_CONFIG)
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    groups, _ = encode_rows(tokenizer, rows, 64, 32, "response", "pair")
    used = set(collate_groups(groups, tokenizer.pad_token_id)["input_ids"].unique().tolist())
    unused = max(set(range(model.config.vocab_size)) - used)
    assert unused >= model.config.vocab_size // 2
    model.config.tie_word_embeddings = False
    untied = AutoModelForCausalLM.from_config(model.config)
    with torch.no_grad():
        untied.model.load_state_dict(model.model.state_dict())
        untied.lm_head.weight.copy_(model.get_input_embeddings().weight)
        untied.model.embed_tokens.weight[unused] = float("nan")
    out = tmp_path / "nan_model"
    untied.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_zero3_non_finite_weights_fail_every_process(nan_model, pairs, tmp_path):
    """Under ZeRO-3 a parameter's data is an empty placeholder; the check reads each process's
    partition, and both processes fail (the NaN is in process 1's), so nothing is published."""
    settings = zero3_settings(schedule_epochs=0.5)  # one optimizer step
    out = tmp_path / "trained"
    log = run_train(nan_model, pairs, out, settings, CPU_MODEL_CONFIG, check=False)
    assert not log.startswith("exit 0"), log[-3000:]
    assert "ZeRO" in log and "'loss':" in log and "'grad_norm': nan" not in log, log[-3000:]
    # process 1 names the weight; process 0, which holds none of the row, fails with it
    assert "of this process's: model.embed_tokens.weight" in log, log[-3000:]
    assert "of this process's: none" in log, log[-3000:]
    assert not out.exists() and not list(tmp_path.glob(".trained.partial*"))
