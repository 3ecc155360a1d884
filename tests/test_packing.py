"""Packed (padding-free) batches give the padded batches' log-probs, SPPO loss and gradients, and
no attention crosses from one packed sequence to another (train.packing, sppo.logprobs)."""

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma2Config, LlamaConfig

from sppo import losses
from sppo.chat import EncodedPair
from sppo.logprobs import IGNORE, collate_groups, collate_packed, response_logps
from sppo.train import GroupCollator

VOCAB = 64
SHAPE = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    pad_token_id=0,
)


def tiny(architecture: str, attention: str):
    """A tiny random model; Gemma-2's sliding window (6 tokens, every other layer), attention and
    final soft-capping are all small enough to act on these sequences of up to 45 tokens."""
    if architecture == "gemma2":
        config = Gemma2Config(
            **SHAPE,
            head_dim=8,
            query_pre_attn_scalar=8,
            sliding_window=6,
            attn_logit_softcapping=1.0,
            final_logit_softcapping=2.0,
        )
    else:
        config = LlamaConfig(**SHAPE)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attention).eval()


MODELS = [("llama", "sdpa"), ("llama", "eager"), ("gemma2", "eager"), ("gemma2", "sdpa")]


@pytest.fixture(scope="module", params=MODELS, ids=["-".join(m) for m in MODELS])
def model(request):
    return tiny(*request.param)


def groups() -> list[list[EncodedPair]]:
    """Three prompts with a chosen and a rejected response each, of very different lengths
    (sequences of 2 to 45 tokens, so the padded batch is mostly padding)."""
    generator = torch.Generator().manual_seed(1)

    def ids(n: int) -> list[int]:
        return torch.randint(3, VOCAB, (n,), generator=generator).tolist()

    shapes = [(3, (40, 2)), (1, (1, 12)), (20, (5, 25))]  # prompt length, (chosen, rejected) lengths
    out = []
    for prompt, sides in shapes:
        prompt_ids = ids(prompt)
        out.append([EncodedPair(prompt_ids, ids(n)) for n in sides])
    return out


def run(model, batch, chunk):
    """Summed log-probs [6], the SPPO loss of the three prompts, and every weight's gradient."""
    model.zero_grad(set_to_none=True)
    n, m = batch["tokens"].shape
    logps = response_logps(model, batch, chunk)
    ratios = logps.double().view(m, n).T - torch.tensor([[-50.0, -60.0]] * n, dtype=torch.float64)
    rates = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
    loss = losses.per_prompt("sppo", ratios, eta=1e3, beta=0.1, win_rates=rates).mean().float()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), loss.detach(), grads


def test_collate_packed_by_hand():
    batch = collate_packed([EncodedPair([5, 6], [7]), EncodedPair([8], [9, 10, 11])])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2, 3]]
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, 7, IGNORE, 9, 10, 11]]
    assert batch["sequence"].tolist() == [[0, 0, 0, 1, 1, 1, 1]]
    assert "attention_mask" not in batch  # a mask would switch transformers' packed detection off
    with pytest.raises(ValueError, match="no prompt token"):
        collate_packed([EncodedPair([5], [6]), EncodedPair([], [7])])


def test_collator_packs_response_major():
    examples = [
        {"sides": g, "ref_logps": [0.0, 0.0], "win_rates": [0.5, 0.5], "pair_prob": 0.5} for g in groups()
    ]
    padded, packed = GroupCollator(0)(examples), GroupCollator(0, packed=True)(examples)
    assert packed["input_ids"].shape == (1, 133)  # 43 + 5 + 2 + 13 + 25 + 45 tokens, no pad
    assert padded["input_ids"].shape == (6, 45)  # 270 positions, 137 of them pads
    assert torch.equal(packed["tokens"], padded["tokens"])
    # response-major: sequence 0 is prompt 0's chosen response, sequence 3 its rejected one
    first = packed["input_ids"][0, packed["sequence"][0] == 3]
    assert first.tolist() == groups()[0][0].prompt_ids + groups()[0][1].response_ids


@pytest.mark.parametrize("chunk", [0, 32])  # 32 does not divide the 85 response tokens
def test_packed_equals_padded(model, chunk):
    padded = collate_groups(groups(), pad_id=0)
    packed = collate_groups(groups(), pad_id=0, packed=True)
    logps, loss, grads = run(model, padded, chunk)
    packed_logps, packed_loss, packed_grads = run(model, packed, chunk)
    assert logps.shape == packed_logps.shape == (6,)
    # float32 with the same operations on the same values, in a different order: attention sums
    # over other (masked, exactly 0) keys and the matmuls block over other shapes, the sums over
    # tokens run in another order. A sum of up to 40 token log-probs, |sum| < 256, then differs by
    # a few float32 ulps of 256 (1.5e-5 each; 2.3e-5 seen at most): 1e-4 is above that and far
    # below a leak or a shifted position (those move a sum by > 1e-3, as the leak test shows).
    assert torch.allclose(packed_logps, logps, rtol=0, atol=1e-4), (packed_logps, logps)
    # the loss is (r − η(P̂ − ½))² with r ≈ 100 and η(P̂ − ½) ≤ 400: an error of 1e-4 in r moves it
    # by 2·|r − target|·1e-4 ≤ 0.1 on a loss of about 1e5, i.e. 1e-6 relative
    assert torch.allclose(packed_loss, loss, rtol=1e-5, atol=0)
    assert grads.keys() == packed_grads.keys() and len(grads) == len(list(model.parameters()))
    for name, grad in grads.items():
        scale = grad.abs().max()
        assert scale > 0, name
        # the same rounding argument on gradients scaled by ∂loss/∂r ≈ 2(r − target) ~ 1e3, which
        # is common to both: relative to the largest entry, a few float32 ulps (6e-8 each)
        # accumulate over the ≤ 45 positions and 2 layers (8e-7 seen at most)
        assert (packed_grads[name] - grad).abs().max() <= 1e-5 * scale, name


@torch.no_grad()
def test_packing_keeps_sequences_apart(model):
    """Changing the first sequence's tokens changes its own log-prob and no other's; with positions
    that do not restart (one long causal sequence) the same change reaches the others, so the check
    can fail."""
    sequences = [pair for group in groups() for pair in group]
    changed = [EncodedPair([t + 1 for t in sequences[0].prompt_ids], sequences[0].response_ids)]
    changed += sequences[1:]
    batch, other = collate_packed(sequences), collate_packed(changed)
    before, after = response_logps(model, batch, 0), response_logps(model, other, 0)
    assert (after[0] - before[0]).abs() > 1e-3
    # the other rows' numbers go through the same kernels and meet the changed tokens only as
    # masked keys (exact zeros): the sums are equal to the bit (1e-6 is below one ulp of them)
    assert torch.allclose(after[1:], before[1:], rtol=0, atol=1e-6), after - before
    # the control: one causal sequence (positions 0 … T − 1) lets the change leak into the others
    for b in (batch, other):
        b["position_ids"] = torch.arange(b["input_ids"].shape[1]).unsqueeze(0)
    leaked = response_logps(model, other, 0) - response_logps(model, batch, 0)
    assert leaked[1:].abs().max() > 1e-3


def test_reflogp_packed_equals_padded(tiny_model_dir, tiny_pairs):
    """The reflogp stage's log-probs (sppo.reflogp.compute) with and without train.packing."""
    from conftest import CPU_MODEL_CONFIG

    from sppo import io, models, reflogp

    model, tokenizer = models.load_policy(str(tiny_model_dir), CPU_MODEL_CONFIG)
    rows = io.read_jsonl(tiny_pairs)
    settings = dict(
        max_length=64, max_prompt_length=32, truncation="response", responses="pair", batch_size=3
    )
    padded = reflogp.compute(model, tokenizer, rows, **settings)
    packed = reflogp.compute(model, tokenizer, rows, **settings, packing=True)
    assert [r["id"] for r in packed] == [r["id"] for r in padded]
    for a, b in zip(padded, packed, strict=True):
        # as in test_packed_equals_padded: sums of ≤ 64 float32 token log-probs in another order
        assert a["ref_logps"] == pytest.approx(b["ref_logps"], abs=1e-4)
        assert a["ref_logps"][0] != a["ref_logps"][1]
