"""Gradient accumulation does not change the update: one optimizer step over the same global batch
gives the same gradient norm and weights with accumulation 1 and 2, in one process and in two.

SGD (its update is the gradient times the learning rate, so a scaled gradient shows) and no clipping.
With transformers' default handling, a ``compute_loss`` that ignores ``num_items_in_batch`` on a
model whose forward takes ``**kwargs`` is not divided by the accumulation steps, and under several
processes it is multiplied by their number; SPPOTrainer averages over the micro-batches (as the
authors' transformers 4.42 did), so none of this may show here.
"""

import re

import pytest
import torch
from conftest import run_train, train_settings
from safetensors.torch import load_file

from sppo import io, models, reflogp

MODEL_CONFIG = {"dtype": "float32", "device": "cpu", "trust_remote_code": False, "revision": None}
GLOBAL_BATCH = 4


@pytest.fixture(scope="module")
def pairs(tiny_model_dir, tmp_path_factory):
    model, tokenizer = models.load_policy(str(tiny_model_dir), MODEL_CONFIG)
    rows = []
    for i in range(GLOBAL_BATCH):
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
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
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


def one_step(tiny_model_dir, pairs, out, processes: int, per_device: int):
    """π after one SGD step of the global batch, and the logged gradient norm."""
    settings = train_settings(
        eta=10,
        learning_rate=0.1,
        optimizer="sgd",
        lr_scheduler="constant_with_warmup",
        warmup_ratio=0.0,
        max_grad_norm=1e9,
        global_batch_size=GLOBAL_BATCH,
        per_device_batch_size=per_device,
        num_processes=processes,
        schedule_epochs=1,
        max_length=64,
        max_prompt_length=32,
    )
    log = run_train(tiny_model_dir, pairs, out, settings, MODEL_CONFIG)
    # the Trainer logs {'loss': ..., 'grad_norm': ...}, numbers rounded to 4 significant digits
    norms = [float(m) for m in re.findall(r"'grad_norm': '?([-+.\deE]+)", log)]
    assert len(norms) == 1, log[-3000:]
    return load_file(out / "model.safetensors"), norms[0]


@pytest.mark.parametrize(("processes", "per_device"), [(1, 2), (2, 1)])
def test_accumulation_does_not_scale_the_update(tiny_model_dir, pairs, tmp_path, processes, per_device):
    reference, reference_norm = one_step(tiny_model_dir, pairs, tmp_path / "a1", 1, GLOBAL_BATCH)
    weights, norm = one_step(tiny_model_dir, pairs, tmp_path / "a2", processes, per_device)
    assert norm == pytest.approx(reference_norm, rel=1e-3)
    before = load_file(tiny_model_dir / "model.safetensors")
    for key in reference:
        step, other = reference[key] - before[key], weights[key] - before[key]
        assert torch.allclose(other, step, rtol=1e-3, atol=1e-7), key
    assert any(reference[k].ne(before[k]).any() for k in reference)
