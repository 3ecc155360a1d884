"""The SPPO loss and the batch layout against numbers computed by hand."""

import pytest
import torch

from sppo import train


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_loss_small_eta():
    # r_w = -10 - (-11) = 1, target η(P̂_w − ½) = 10 · 0.2 = 2 → (1 − 2)² = 1
    # r_l = -12 - (-11) = -1, target 10 · (−0.2) = −2 → (−1 + 2)² = 1 ; ½ (1 + 1) = 1
    loss = train.sppo_loss(t(-10.0), t(-12.0), t(-11.0), t(-11.0), t(0.7), t(0.3), eta=10.0)
    assert loss.item() == pytest.approx(1.0, abs=1e-12)


def test_loss_reference_eta():
    # η = 1000: targets ±400; ½[(0.5 − 400)² + (−0.25 + 400)²] = ½(159600.25 + 159800.0625)
    loss = train.sppo_loss(t(-4.5), t(-8.25), t(-5.0), t(-8.0), t(0.9), t(0.1), eta=1000.0)
    assert loss.item() == pytest.approx(159700.15625, abs=1e-9)


def test_loss_is_zero_at_its_targets_and_per_pair():
    eta = 50.0
    p_w, p_l = t(0.8, 0.6), t(0.2, 0.5)
    ref_c, ref_r = t(-3.0, -7.0), t(-4.0, -2.0)
    loss = train.sppo_loss(ref_c + eta * (p_w - 0.5), ref_r + eta * (p_l - 0.5), ref_c, ref_r, p_w, p_l, eta)
    assert loss.shape == (2,)
    assert torch.allclose(loss, torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize(
    ("global_batch", "per_device", "world", "expected"),
    [(64, 8, 8, 1), (64, 4, 8, 2), (64, 1, 8, 8), (16, 8, 1, 2), (16, 4, 2, 2)],
)
def test_accumulation_keeps_global_batch(global_batch, per_device, world, expected):
    assert train.accumulation_steps(global_batch, per_device, world) == expected


def test_accumulation_rejects_indivisible():
    with pytest.raises(ValueError, match="not a multiple"):
        train.accumulation_steps(64, 3, 2)


def test_schedule_length_and_stop_are_separate():
    # 20000 pairs / 64 = 312.5 → 313 steps per epoch; Mistral: 18-epoch schedule stopped after 1.
    stop, length = train.schedule(20000, {"global_batch_size": 64, "schedule_epochs": 18, "stop_epochs": 1})
    assert (stop, length) == (313, 313 * 18)
    stop, length = train.schedule(100, {"global_batch_size": 16, "schedule_epochs": 2, "stop_epochs": None})
    assert (stop, length) == (14, 14)
