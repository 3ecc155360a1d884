"""Why a sample ended, with the transformers backend: "stop" where the model emitted an
end-of-sequence token, "length" where it reached max_new_tokens; and prompts longer than the model's
context handled before generation."""

from __future__ import annotations

import torch
from conftest import CPU_MODEL_CONFIG

from sppo import models, sampling
from sppo.chat import render_prompt

PROMPTS = ["What is the capital of France?", "Name three colours."]


def test_finish_reasons_by_hand():
    new = torch.tensor([[5, 6, 7], [5, 2, 0], [9, 9, 4]])
    assert sampling.finish_reasons(new, [2]) == ["length", "stop", "length"]
    assert sampling.finish_reasons(new, [2, 4]) == ["length", "stop", "stop"]


def sampled_ids(model, tokenizer, prompts, n, seed):
    """The ``n`` new tokens of each prompt as :func:`sampling.sample` draws them at temperature 1."""
    tokenizer.padding_side = "left"
    batch = tokenizer(
        [render_prompt(tokenizer, p) for p in prompts],
        add_special_tokens=False,
        padding=True,
        return_tensors="pt",
        return_token_type_ids=False,
    )
    torch.manual_seed(seed)
    out = model.generate(
        **batch, max_new_tokens=n, do_sample=True, top_k=None, top_p=1.0, pad_token_id=tokenizer.pad_token_id
    )
    return out[:, batch["input_ids"].shape[1] :].tolist()


def test_transformers_samples_record_why_they_ended(tiny_model_dir):
    model, tokenizer = models.load_policy(str(tiny_model_dir), CPU_MODEL_CONFIG)
    settings = dict(seed=3, temperature=1.0, top_p=1.0, max_new_tokens=4)
    first, second = sampled_ids(model, tokenizer, PROMPTS, 4, seed=3)
    eos = model.generation_config.eos_token_id
    assert eos not in first + second  # the random model ends neither in 4 tokens: both cut
    _, reasons = sampling.sample(model, tokenizer, PROMPTS, **settings)
    assert reasons == ["length", "length"]
    # Declare one of the first sample's tokens that the second never draws an end-of-sequence token:
    # the first sample now stops there, the second still runs to the limit.
    j = next(j for j, token in enumerate(first) if token not in second)
    model.generation_config.eos_token_id = [eos, first[j]]
    texts, reasons = sampling.sample(model, tokenizer, PROMPTS, **settings)
    assert reasons == ["stop", "length"]
    assert texts[0] == tokenizer.decode(first[: j + 1], skip_special_tokens=True)


def test_a_text_template_and_stop_tokens(tiny_model_dir):
    """alpaca_eval.generator's settings: the prompt is the template's text, special tokens added
    (sppo.chat.prompt_ids); a stop token ends a response as an end-of-sequence token does."""
    from sppo.chat import prompt_ids

    model, tokenizer = models.load_policy(str(tiny_model_dir), CPU_MODEL_CONFIG)
    template = "Q: {instruction}\nA:"
    settings = dict(seed=3, temperature=1.0, top_p=1.0, max_new_tokens=4, template=template)
    tokenizer.padding_side = "left"
    batch = tokenizer(
        [template.replace("{instruction}", p) for p in PROMPTS], padding=True, return_tensors="pt"
    )
    assert batch["input_ids"][1, -len(prompt_ids(tokenizer, PROMPTS[1], template)) :].tolist() == prompt_ids(
        tokenizer, PROMPTS[1], template
    )
    torch.manual_seed(3)
    out = model.generate(
        **batch, max_new_tokens=4, do_sample=True, top_k=None, top_p=1.0, pad_token_id=tokenizer.pad_token_id
    )
    first, second = out[:, batch["input_ids"].shape[1] :].tolist()
    texts, reasons = sampling.sample(model, tokenizer, PROMPTS, **settings)
    assert texts == tokenizer.batch_decode([first, second], skip_special_tokens=True)
    assert reasons == ["length", "length"]  # the random model ends neither in 4 tokens
    j = next(j for j, token in enumerate(first) if token not in second)
    texts, reasons = sampling.sample(model, tokenizer, PROMPTS, **settings, stop_token_ids=[first[j]])
    assert reasons == ["stop", "length"]
    assert texts[0] == tokenizer.decode(first[: j + 1], skip_special_tokens=True)


def test_rows_carry_one_finish_reason_per_response(tiny_model_dir):
    model, tokenizer = models.load_policy(str(tiny_model_dir), CPU_MODEL_CONFIG)
    rows = [{"id": str(i), "prompt": p} for i, p in enumerate(PROMPTS)]
    settings = {"k": 3, "sample_seeds": None, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 2}
    batches = sampling.shard_rows(rows, 0, 1, 2)
    out = sampling.generate_shard(model, tokenizer, batches, settings)
    assert [len(r["finish_reasons"]) for r in out] == [3, 3]
    assert {f for r in out for f in r["finish_reasons"]} <= set(sampling.FINISH_REASONS)
    # a dropped prompt (None in its batch) gives no row, and the other keeps its responses
    kept = sampling.generate_shard(model, tokenizer, [(0, [None, rows[1]])], settings)
    assert [r["id"] for r in kept] == ["1"]
