"""The training losses (sppo.losses) against numbers computed by hand and against TRL's own loss code,
and the batch layout."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from sppo import losses, train


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def loss(name, ratios, **kwargs):
    defaults = {"eta": 10.0, "beta": 0.1}
    return losses.per_prompt(name, torch.tensor(ratios, dtype=torch.float64), **(defaults | kwargs))


def test_sppo_small_eta():
    # r_w = 1, target η(P̂_w − ½) = 10 · 0.2 = 2 → (1 − 2)² = 1
    # r_l = −1, target 10 · (−0.2) = −2 → (−1 + 2)² = 1 ; ½ (1 + 1) = 1
    assert loss("sppo", [[1.0, -1.0]], win_rates=t(0.7, 0.3)[None]).item() == pytest.approx(1.0, abs=1e-12)


def test_sppo_reference_eta():
    # η = 1000: targets ±400; r_w = 0.5, r_l = −0.25:
    # ½[(0.5 − 400)² + (−0.25 + 400)²] = ½(159600.25 + 159800.0625)
    value = loss("sppo", [[0.5, -0.25]], eta=1000.0, win_rates=t(0.9, 0.1)[None]).item()
    assert value == pytest.approx(159700.15625, abs=1e-9)


def test_sppo_is_zero_at_its_targets_and_per_prompt():
    eta, rates = 50.0, torch.tensor([[0.8, 0.2], [0.6, 0.5]], dtype=torch.float64)
    values = losses.per_prompt("sppo", eta * (rates - 0.5), eta=eta, beta=1.0, win_rates=rates)
    assert values.shape == (2,)
    assert torch.equal(values, torch.zeros(2, dtype=torch.float64))


def test_sppo_all_responses():
    # K = 3, η = 10, P̂ = 0.7, 0.5, 0.3: targets 2, 0, −2; r = 1, 0, −2: (1/3)[(1 − 2)² + 0² + 0²] = 1/3
    value = loss("sppo", [[1.0, 0.0, -2.0]], win_rates=t(0.7, 0.5, 0.3)[None]).item()
    assert value == pytest.approx(1 / 3, abs=1e-12)


def test_sppo_all_with_two_responses_is_the_pair_loss():
    ratios, rates = torch.tensor([[0.3, -1.7]], dtype=torch.float64), t(0.66, 0.21)[None]
    pair = 0.5 * ((0.3 - 10 * (0.66 - 0.5)) ** 2 + (-1.7 - 10 * (0.21 - 0.5)) ** 2)
    assert losses.per_prompt("sppo", ratios, eta=10.0, beta=1.0, win_rates=rates).item() == pytest.approx(
        pair
    )


def test_sppo_single():
    # P_wl = 0.8, η = 10: target 3; r_w = 1, r_l = −1: ½[(1 − 3)² + (−1 + 3)²] = 4
    assert loss("sppo_single", [[1.0, -1.0]], pair_probs=t(0.8)).item() == pytest.approx(4.0, abs=1e-12)


def test_sppo_hard():
    # η = 10: (1 − 5)² + (−1 + 5)² = 32
    assert loss("sppo_hard", [[1.0, -1.0]]).item() == pytest.approx(32.0, abs=1e-12)


def test_dpo():
    # β = 0.1: −log σ(0.1 · (1 − (−1))) = log(1 + e^−0.2)
    assert loss("dpo", [[1.0, -1.0]]).item() == pytest.approx(math.log1p(math.exp(-0.2)), abs=1e-12)


def test_ipo_normalises_by_response_length():
    # β = 0.1: 1/(2β) = 5; r_w = 6 over 3 tokens = 2, r_l = −4 over 2 tokens = −2: (2 + 2 − 5)² = 1
    value = loss("ipo", [[6.0, -4.0]], tokens=torch.tensor([[3, 2]])).item()
    assert value == pytest.approx(1.0, abs=1e-12)


def test_ipo_on_summed_log_ratios_as_the_authors():
    # β = 0.1: (6 − (−4) − 5)² = 25, whatever the lengths
    value = loss("ipo", [[6.0, -4.0]], tokens=torch.tensor([[3, 2]]), ipo_normalize=False).item()
    assert value == pytest.approx(25.0, abs=1e-12)


def test_pair_losses_refuse_more_responses():
    with pytest.raises(ValueError, match="compares two responses"):
        loss("dpo", [[1.0, 0.0, -1.0]])


def trl_loss(loss_type: str, beta: float, policy, ref, tokens) -> float:
    """TRL's DPOTrainer._compute_loss (its own loss code) on these summed log-probs: a stand-in model
    returns per-token log-probs whose sums are ``policy`` ([n, 2]: chosen, rejected), the reference
    log-probs are precomputed, and ``tokens`` [n, 2] response tokens are in each completion mask."""
    from trl import DPOTrainer

    n, width = policy.shape[0], int(tokens.max()) + 2
    rows = torch.cat([policy[:, 0], policy[:, 1]])  # TRL's layout: the chosen, then the rejected
    counts = torch.cat([tokens[:, 0], tokens[:, 1]])
    completion = torch.zeros(2 * n, width, dtype=torch.long)
    per_token = torch.zeros(2 * n, width - 1, dtype=torch.float64)
    for i, c in enumerate(counts.tolist()):
        completion[i, 1 : 1 + c] = 1
        per_token[i, :c] = rows[i] / c
    zeros = torch.zeros(2 * n, width - 1)
    outputs = SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())
    trainer = object.__new__(DPOTrainer)
    trainer.__dict__.update(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[loss_type],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=0.0,
        use_weighting=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros(2 * n, width, dtype=torch.long),
        "attention_mask": torch.ones(2 * n, width, dtype=torch.long),
        "completion_mask": completion,
        "ref_chosen_logps": ref[:, 0],
        "ref_rejected_logps": ref[:, 1],
    }
    return DPOTrainer._compute_loss(trainer, lambda **kwargs: outputs, inputs, return_outputs=False).item()


@pytest.mark.parametrize(("ours", "theirs"), [("dpo", "sigmoid"), ("ipo", "ipo"), ("sppo_hard", "sppo_hard")])
@pytest.mark.parametrize("beta", [0.1, 0.01])
def test_pair_losses_equal_trls(ours, theirs, beta):
    gen = torch.Generator().manual_seed(0)
    policy = -50 * torch.rand(6, 2, generator=gen, dtype=torch.float64)
    ref = policy + torch.randn(6, 2, generator=gen, dtype=torch.float64)
    tokens = torch.randint(1, 40, (6, 2), generator=gen)
    expected = trl_loss(theirs, beta, policy, ref, tokens)
    # TRL's sppo_hard has β where ours has η = 1/β
    value = losses.per_prompt(ours, policy - ref, eta=1 / beta, beta=beta, tokens=tokens).mean().item()
    assert value == pytest.approx(expected, rel=1e-9)


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
