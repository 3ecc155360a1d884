"""Prompt rendering and pair encoding: one BOS, only response tokens, the tokens a joint
tokenization gives (on real tokenizers too), and both truncation rules against hand-made numbers."""

import json
import os

import pytest
from tokenizers import normalizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from sppo.chat import EncodedPair, encode_response, render_prompt, truncate

# Mistral-7B-Instruct-v0.2's chat template (its tokenizer_config.json)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
RESPONSES = [
    "Blue.",
    " Blue, with a leading space.",
    "Line one\nLine two\n\n- item",
    "Grüße aus Zürich: 東京 🙂",
    "",
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _mistral_data(name: str) -> str:
    import mistral_common

    return os.path.join(os.path.dirname(mistral_common.__file__), "data", name)


def mistral_spm(tmp_dir, hub_normalizer: bool):
    """Mistral-7B v0.1/v0.2's SentencePiece tokenizer (tokenizer.model, shipped by mistral-common) with
    v0.2's template, as transformers converts it from a directory holding the .model file, or with the
    hub tokenizer.json's legacy layout (a "▁" prepended and spaces replaced by the normalizer, no
    pre-tokenizer)."""
    import shutil

    shutil.copy(_mistral_data("tokenizer.model.v1"), tmp_dir / "tokenizer.model")
    config = {"tokenizer_class": "LlamaTokenizer", "legacy": True, "chat_template": MISTRAL_TEMPLATE}
    (tmp_dir / "tokenizer_config.json").write_text(json.dumps(config))
    tok = AutoTokenizer.from_pretrained(tmp_dir)
    assert len(tok) == 32000
    if hub_normalizer:
        backend = tok.backend_tokenizer
        backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        backend.pre_tokenizer = None
    return tok


def mistral_tekken():
    """Mistral's byte-level BPE (Tekken, Mistral-NeMo's vocabulary, shipped by mistral-common)."""
    from transformers.integrations.mistral.tokenizer import MistralConverter

    backend = MistralConverter(_mistral_data("tekken_240718.json")).converted()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        chat_template=MISTRAL_TEMPLATE,
    )


REAL = {
    "mistral-spm": lambda tmp: mistral_spm(tmp, False),
    "mistral-spm-hub": lambda tmp: mistral_spm(tmp, True),
    "tekken": lambda tmp: mistral_tekken(),
}


def test_rendered_prompt_is_one_user_turn_with_generation_prompt(tokenizer):
    assert render_prompt(tokenizer, "Hi there") == "<|bos|><|user|>\nHi there<|end|><|assistant|>\n"


def test_single_bos_and_response_tokens_only(tokenizer):
    enc = encode_response(tokenizer, "Name a colour.", "Blue.")
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


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_tokenizers_give_the_joint_tokens(name, tmp_path):
    tok = REAL[name](tmp_path)
    separate_differs = False
    for response in RESPONSES:
        prompt = "Name a colour, please."
        enc = encode_response(tok, prompt, response)
        full = tok.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
        )
        assert enc.input_ids == tok(full, add_special_tokens=False)["input_ids"]  # the model reads these
        assert enc.prompt_ids == tok(render_prompt(tok, prompt), add_special_tokens=False)["input_ids"]
        assert enc.input_ids.count(tok.bos_token_id) == 1 and enc.input_ids[0] == tok.bos_token_id
        assert enc.response_ids[-1] == tok.eos_token_id and enc.response_ids.count(tok.eos_token_id) == 1
        assert tok.decode(enc.response_ids).replace("▁", " ").endswith(response.strip() + "</s>")
        suffix = full[len(render_prompt(tok, prompt)) :]  # the old way: the response text tokenized alone
        separate_differs |= tok(suffix, add_special_tokens=False)["input_ids"] != enc.response_ids
    if name.startswith("mistral-spm"):
        assert separate_differs  # the dummy prefix: tokenized alone, the response starts with another token


def test_a_merged_boundary_token_starts_the_response():
    """Where the prompt's last token merges with the response's first, the response starts one token
    earlier (TRL's rule): a template ending without a separator, on the tiny byte-level tokenizer."""
    tok = mistral_tekken()
    tok.chat_template = (
        "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}{% endif %}"
    )
    enc = encode_response(tok, "Hel", "lo")
    assert tok(render_prompt(tok, "Hel"), add_special_tokens=False)["input_ids"] != enc.prompt_ids
    assert enc.input_ids == tok("Hello", add_special_tokens=False)["input_ids"]


def test_a_template_that_rewrites_the_prompt_is_refused(tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="cannot be told apart"):
        encode_response(tokenizer, "Q", "A")


def pair(prompt: int, chosen: int, rejected: int) -> tuple[EncodedPair, EncodedPair]:
    """Token ids 1.. for the prompt, 100.. and 200.. for the responses, of the given lengths."""
    p = list(range(1, prompt + 1))
    return EncodedPair(p, list(range(100, 100 + chosen))), EncodedPair(p, list(range(200, 200 + rejected)))


def lengths(sides) -> list[tuple[int, int]]:
    return [(len(s.prompt_ids), len(s.response_ids)) for s in sides]


def test_pair_rule_is_decided_by_the_longer_response():
    # max_length 100, max_prompt_length 40. Prompt 60, chosen 30, rejected 70: 60 + 70 > 100, so the
    # prompt keeps its last 40; 40 + 70 > 100, so both responses are capped at 100 − 40 = 60.
    c, r = truncate(pair(60, 30, 70), 100, 40, "pair")
    assert lengths((c, r)) == [(40, 30), (40, 60)]
    assert c.prompt_ids == list(range(21, 61)) and r.response_ids == list(range(200, 260))
    assert (c.prompt_truncated, c.response_truncated, r.response_truncated) == (True, False, True)
    # Prompt 30, chosen 10, rejected 80: 30 + 80 > 100, the prompt is short already (30 ≤ 40); still
    # 110 > 100, so responses are capped at 60 although 30 + 70 would fit.
    assert lengths(truncate(pair(30, 10, 80), 100, 40, "pair")) == [(30, 10), (30, 60)]
    # Prompt 60, chosen 10, rejected 45: 105 > 100, the prompt is cut to 40 (also on the short side);
    # 85 ≤ 100, so no response is cut.
    assert lengths(truncate(pair(60, 10, 45), 100, 40, "pair")) == [(40, 10), (40, 45)]


def test_response_rule_cuts_each_side_alone():
    # Prompt 60, chosen 30 (fits: 90), rejected 70: 130 > 100, the prompt keeps 40, the response 60.
    c, r = truncate(pair(60, 30, 70), 100, 40, "response")
    assert lengths((c, r)) == [(60, 30), (40, 60)]
    assert not c.prompt_truncated and r.prompt_truncated and r.response_truncated
    # Prompt 30, rejected 80: 110 > 100, the prompt (30 ≤ 40) stays, the response gets 70.
    assert lengths(truncate(pair(30, 10, 80), 100, 40, "response")) == [(30, 10), (30, 70)]


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="train.truncation"):
        truncate(pair(1, 1, 1), 10, 5, "keep_start")


def test_empty_and_odd_responses_encode(tokenizer):
    for response in ["", "\x00\ufffd\x07", "  "]:
        enc = encode_response(tokenizer, "Q", response)
        assert enc.response_ids[-1] == tokenizer.eos_token_id
