"""Log-probs from pieces of the LM head equal those from the full logits, in value and gradient."""

import pytest
import torch
from conftest import CPU_MODEL_CONFIG, REPO, TINY_MODEL

from sppo import basemodel, logprobs, models, split

MODEL_CONFIG = CPU_MODEL_CONFIG


@pytest.fixture(scope="module", params=["llama", "gemma2"])
def model(request, tiny_model_dir, tmp_path_factory):
    """The tiny Llama, and a tiny Gemma-2 whose final soft-capping (cap 0.5) saturates its logits."""
    if request.param == "llama":
        path = tiny_model_dir
    else:
        path = tmp_path_factory.mktemp("gemma2") / "model"
        prompts = split.read_local(REPO / "data" / "prompts.jsonl", "prompt")
        basemodel.build(prompts, {**TINY_MODEL, "architecture": "gemma2"}, seed=0, out_dir=path)
    model = models.load_model(str(path), MODEL_CONFIG)
    if request.param == "gemma2":
        model.config.final_logit_softcapping = 0.5
    return model


def batch(vocab: int) -> dict:
    """Three rows of 23 tokens: prompts of 5, 9 and 2 tokens, the third row padded after 17."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (3, 23), generator=generator)
    mask = torch.ones_like(ids)
    mask[2, 17:] = 0
    labels = ids.clone()
    for row, prompt in enumerate((5, 9, 2)):
        labels[row, :prompt] = logprobs.IGNORE
    labels[mask == 0] = logprobs.IGNORE
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def logps_and_grads(model, inputs, chunk, dtype):
    """Summed log-probs and the gradient of a weighted sum of them, under ``dtype`` autocast."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        logps = logprobs.response_logps(model, inputs, chunk)
    (logps * torch.tensor([1.0, -2.0, 0.5])).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), grads


# 1 divides the 47 response tokens, 7 does not, 47 is one piece, 1000 more than all
@pytest.mark.parametrize("chunk", [1, 7, 47, 1000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_chunked_equals_full_logits(model, chunk, dtype):
    inputs = batch(model.config.vocab_size)
    assert int((inputs["labels"][:, 1:] != logprobs.IGNORE).sum()) == 47
    full, full_grads = logps_and_grads(model, inputs, 0, dtype)
    chunked, chunked_grads = logps_and_grads(model, inputs, chunk, dtype)
    assert full.dtype == chunked.dtype == torch.float32
    assert (full < 0).all()
    assert torch.allclose(chunked, full, rtol=0, atol=1e-4 if dtype == torch.float32 else 2e-3)
    assert full_grads.keys() == chunked_grads.keys()
    assert len(full_grads) == len(list(model.parameters()))  # every weight gets a gradient
    for name, grad in full_grads.items():
        scale = grad.abs().max()
        assert scale > 0, name
        # bfloat16: the pieces' matmuls round differently from the whole one's, within a few ulps
        tolerance = 1e-5 if dtype == torch.float32 else 3e-2
        assert (chunked_grads[name] - grad).abs().max() <= tolerance * scale, name


def test_inference_mode_and_padding_rows(model):
    """Without autograd (the reflogp stage) the pieces are not checkpointed; a row without response
    tokens sums to 0."""
    inputs = batch(model.config.vocab_size)
    inputs["labels"][1] = logprobs.IGNORE
    with torch.inference_mode():
        full = logprobs.response_logps(model, inputs, None)
        chunked = logprobs.response_logps(model, inputs, 4)
    assert full[1] == chunked[1] == 0
    assert torch.allclose(chunked, full, rtol=0, atol=1e-4)


@pytest.mark.parametrize("model", ["gemma2"], indirect=True)  # Llama has no final soft-capping
def test_softcapping_is_applied(model):
    """Gemma-2's cap changes the log-probs; the pieces apply it as the model does (tested above)."""
    assert model.config.model_type == "gemma2"
    inputs = batch(model.config.vocab_size)
    with torch.no_grad():
        capped = logprobs.response_logps(model, inputs, 8)
        model.config.final_logit_softcapping = None
        try:
            uncapped = logprobs.response_logps(model, inputs, 8)
        finally:
            model.config.final_logit_softcapping = 0.5
    assert (capped - uncapped).abs().max() > 1e-2


def test_unknown_logit_transform_is_refused(model, monkeypatch):
    """A model whose forward changes its logits in a way the pieces do not know fails loudly."""
    forward = model.forward

    def scaled(*args, **kwargs):
        out = forward(*args, **kwargs)
        out.logits = out.logits * 3
        return out

    monkeypatch.setattr(model, "forward", scaled)
    with torch.no_grad(), pytest.raises(ValueError, match="logprob_chunk: 0"):
        logprobs.response_logps(model, batch(model.config.vocab_size), 8)
