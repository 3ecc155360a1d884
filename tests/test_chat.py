"""Prompt rendering and pair encoding: one BOS, only response tokens, the reference's length handling."""

import pytest
from transformers import AutoTokenizer

from sppo.chat import encode_pair, render_prompt


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_rendered_prompt_is_one_user_turn_with_generation_prompt(tokenizer):
    assert render_prompt(tokenizer, "Hi there") == "<|bos|><|user|>\nHi there<|end|><|assistant|>\n"


def test_single_bos_and_response_tokens_only(tokenizer):
    enc = encode_pair(tokenizer, "Name a colour.", "Blue.", max_length=512, max_prompt_length=256)
    assert enc.input_ids.count(tokenizer.bos_token_id) == 1 and enc.input_ids[0] == tokenizer.bos_token_id
    # The assistant header belongs to the prompt; the response is its content plus end-of-turn.
    assert tokenizer.decode(enc.prompt_ids).endswith("<|assistant|>\n")
    assert tokenizer.decode(enc.response_ids) == "Blue.<|end|>"
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
        tokenize=False,
    )
    assert enc.input_ids == tokenizer(full, add_special_tokens=False)["input_ids"]
    assert not enc.prompt_truncated and not enc.response_truncated


def test_long_pair_keeps_prompt_end_and_cuts_response(tokenizer):
    prompt = " ".join(f"word{i}" for i in range(200))
    response = " ".join(f"answer{i}" for i in range(200))
    enc = encode_pair(tokenizer, prompt, response, max_length=120, max_prompt_length=50)
    assert len(enc.prompt_ids) == 50 and len(enc.input_ids) == 120
    full_prompt = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    assert enc.prompt_ids == full_prompt[-50:]  # the end of the prompt, with the assistant header
    assert enc.prompt_truncated and enc.response_truncated
    assert tokenizer.decode(enc.response_ids).startswith("answer0 answer1")


def test_short_prompt_is_not_cut_when_only_the_response_is_long(tokenizer):
    response = " ".join(f"answer{i}" for i in range(200))
    enc = encode_pair(tokenizer, "Short?", response, max_length=100, max_prompt_length=50)
    assert not enc.prompt_truncated and enc.response_truncated
    assert len(enc.input_ids) == 100


def test_empty_and_odd_responses_encode(tokenizer):
    for response in ["", "\x00\ufffd\x07", "  "]:
        enc = encode_pair(tokenizer, "Q", response, max_length=64, max_prompt_length=32)
        assert enc.response_ids[-1] == tokenizer.eos_token_id
