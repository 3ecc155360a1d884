"""Gradient accumulation does not change the update: one optimizer step over the same global batch
gives the same gradient norm and weights with accumulation 1 and 2, in one process and in two, and
with packed micro-batches (train.packing) through the Trainer.

SGD (its update is the gradient times the learning rate, so a scaled gradient shows) and no clipping.
With transformers' default handling, a ``compute_loss`` that ignores ``num_items_in_batch`` on a
model whose forward takes ``**kwargs`` is not divided by the accumulation steps, and under several
processes it is multiplied by their number; SPPOTrainer averages over the micro-batches (as the
authors' transformers 4.42 did), so none of this may show here.
"""

import re

import pytest
import torch
from conftest import CPU_MODEL_CONFIG, TINY_PAIRS, run_train, train_settings
from safetensors.torch import load_file

GLOBAL_BATCH = TINY_PAIRS


def one_step(tiny_model_dir, pairs, out, processes: int, per_device: int, packing: bool = False):
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
        packing=packing,
    )
    log = run_train(tiny_model_dir, pairs, out, settings, CPU_MODEL_CONFIG)
    # the Trainer logs {'loss': ..., 'grad_norm': ...}, numbers rounded to 4 significant digits
    norms = [float(m) for m in re.findall(r"'grad_norm': '?([-+.\deE]+)", log)]
    assert len(norms) == 1, log[-3000:]
    return load_file(out / "model.safetensors"), norms[0]


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tiny_pairs, tmp_path_factory):
    """One process, the whole global batch in one padded micro-batch: the update the others must make."""
    return one_step(tiny_model_dir, tiny_pairs, tmp_path_factory.mktemp("a1") / "out", 1, GLOBAL_BATCH)


@pytest.mark.parametrize(("processes", "per_device", "packing"), [(1, 2, False), (2, 1, False), (1, 2, True)])
def test_accumulation_does_not_scale_the_update(
    tiny_model_dir, tiny_pairs, tmp_path, reference, processes, per_device, packing
):
    reference, reference_norm = reference
    weights, norm = one_step(tiny_model_dir, tiny_pairs, tmp_path / "a2", processes, per_device, packing)
    assert norm == pytest.approx(reference_norm, rel=1e-3)
    before = load_file(tiny_model_dir / "model.safetensors")
    for key in reference:
        step, other = reference[key] - before[key], weights[key] - before[key]
        assert torch.allclose(other, step, rtol=1e-3, atol=1e-7), key
    assert any(reference[k].ne(before[k]).any() for k in reference)
