"""The workflow's tokenizer is the model repo's ``tokenizer.json`` as it is (sppo/tokenizer_files.py),
in every stage and in vLLM, on the recipes' tokenizer formats laid out as the hub lays them out:

- Mistral-7B-Instruct-v0.2: its real SentencePiece model (mistral-common's ``tokenizer.model.v1``)
  converted to ``tokenizer.json`` with the hub file's legacy pipeline (a "▁" prepended and spaces
  replaced by the normalizer, no pre-tokenizer, byte fallback), ``LlamaTokenizer`` with ``legacy: true``;
- Llama-3: its real byte-level BPE (llama-models' ``llama3/tokenizer.model``, tiktoken's format)
  converted by transformers' TikTokenConverter (as Meta's conversion script made the hub file),
  ``PreTrainedTokenizerFast`` with Llama-3-8B-Instruct's special tokens and template;
- Gemma-2: a stand-in (its SentencePiece model ships in no package found): Gemma-2's tokenizer.json
  pipeline and ``GemmaTokenizer`` config over Mistral's vocabulary;
- the tiny test model's byte-level BPE.

The reference is the ``tokenizers`` library reading ``tokenizer.json`` itself. Under transformers
5.17 only the Mistral format differs through ``AutoTokenizer``; the others stay as guards."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer

from sppo import models, tokenizer_files
from sppo.chat import encode_response, render_prompt

MODEL_CONFIG = {"trust_remote_code": False, "revision": None}

# Mistral-7B-Instruct-v0.2's chat template as the hub has it now (tokenizer_config.json)
MISTRAL_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{%- endif %}"
    "{%- if message['role'] == 'user' %}{%- if loop.first and system_message is defined %}"
    "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token}}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported!') }}{%- endif %}"
    "{%- endfor %}"
)
# Llama-3-8B-Instruct's chat template (tokenizer_config.json)
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
CONVERSATIONS = [
    ("Name a colour.", "Blue."),
    (" A leading space.", "  Two leading spaces\nand a newline."),
    ("Grüße aus Zürich: 東京 🙂", "Ça va — très bien.\n\n- item"),
    ("Line one\n\nLine two ", "\n starts with a newline"),
]


def mistral_repo(directory: Path, template: str = MISTRAL_TEMPLATE) -> Path:
    """Mistral-7B-Instruct-v0.2's tokenizer files as on the hub: tokenizer.model, tokenizer.json (the
    legacy pipeline of transformers 4's converter) and tokenizer_config.json."""
    import mistral_common

    model = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    convert = directory / "convert"
    convert.mkdir()
    shutil.copy(model, convert / "tokenizer.model")
    (convert / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    backend = AutoTokenizer.from_pretrained(convert).backend_tokenizer  # vocabulary and merges
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.pre_tokenizer = None
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    repo = directory / "mistral"
    repo.mkdir()
    shutil.copy(model, repo / "tokenizer.model")
    backend.save(str(repo / "tokenizer.json"))
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "legacy": True,
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "spaces_between_special_tokens": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": template,
    }
    (repo / "tokenizer_config.json").write_text(json.dumps(config))
    return repo


def llama3_repo(directory: Path) -> Path:
    """Llama-3-8B-Instruct's tokenizer files as on the hub: tokenizer.json converted from Meta's
    tiktoken file, tokenizer_config.json naming the generic fast class."""
    import llama_models
    from transformers.convert_slow_tokenizer import TikTokenConverter

    model = Path(llama_models.__file__).parent / "llama3" / "tokenizer.model"
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>"]
    names += ["<|reserved_special_token_1|>", "<|reserved_special_token_2|>"]
    names += ["<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>"]
    names += ["<|reserved_special_token_4|>", "<|eot_id|>"]
    names += [f"<|reserved_special_token_{i}|>" for i in range(5, 256 - 5)]
    backend = TikTokenConverter(str(model), extra_special_tokens=names).converted()
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                special_tokens=[("<|begin_of_text|>", 128000)],
            ),
        ]
    )
    repo = directory / "llama3"
    repo.mkdir()
    backend.save(str(repo / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "chat_template": LLAMA3_TEMPLATE,
    }
    (repo / "tokenizer_config.json").write_text(json.dumps(config))
    return repo


# Gemma-2-9b-it's chat template (tokenizer_config.json)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)


def gemma_standin_repo(directory: Path) -> Path:
    """A stand-in for Gemma-2's files: Gemma-2's tokenizer.json pipeline (spaces replaced by "▁" in
    the normalizer, no dummy prefix, byte fallback, its turn markers as special tokens) and
    ``GemmaTokenizer`` config with its template, over Mistral's SentencePiece vocabulary (Gemma's own
    model ships in no package)."""
    backend = Tokenizer.from_file(str(mistral_repo(directory / "base") / "tokenizer.json"))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    backend.add_special_tokens(["<start_of_turn>", "<end_of_turn>", "<pad>", "<mask>"])
    repo = directory / "gemma"
    repo.mkdir()
    backend.save(str(repo / "tokenizer.json"))
    config = {
        "tokenizer_class": "GemmaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
        "spaces_between_special_tokens": False,
        "chat_template": GEMMA_TEMPLATE,
    }
    (repo / "tokenizer_config.json").write_text(json.dumps(config))
    return repo


@pytest.fixture(scope="module")
def repos(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("tokenizer_repos")
    (directory / "base").mkdir()
    return {
        "mistral": mistral_repo(directory),
        "llama3": llama3_repo(directory),
        "gemma-standin": gemma_standin_repo(directory),
        "tiny": tiny_model_dir,
    }


def chat_texts(tokenizer) -> list[str]:
    """The model's own chat template on each conversation, the prompt with its generation prompt, and
    special tokens followed by spaces and newlines."""
    texts = []
    for prompt, response in CONVERSATIONS:
        turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        texts += [tokenizer.apply_chat_template(turns, tokenize=False), render_prompt(tokenizer, prompt)]
    bos, eos = tokenizer.bos_token or "", tokenizer.eos_token
    texts += [f"{bos} \n x{eos}\n{eos}  y", f" leading{eos} ", "non-ASCII: Zürich 東京 🙂"]
    return texts


def ids(tokenizer, text: str, special: bool) -> list[int]:
    return tokenizer(text, add_special_tokens=special)["input_ids"]


@pytest.mark.parametrize("name", ["mistral", "llama3", "gemma-standin", "tiny"])
def test_the_workflow_tokenizer_is_the_repos_tokenizer_json(name, repos, tmp_path):
    repo = repos[name]
    reference = Tokenizer.from_file(str(repo / "tokenizer.json"))
    ours = models.load_tokenizer(str(repo), MODEL_CONFIG)  # every stage loads this
    saved = tokenizer_files.save_for_loaders(ours, tmp_path / "for_vllm")
    vllms = AutoTokenizer.from_pretrained(saved)  # what vLLM loads from its tokenizer= path
    config = json.loads((repo / "tokenizer_config.json").read_text())
    template = config.get("chat_template") or (repo / "chat_template.jinja").read_text()
    assert ours.chat_template == vllms.chat_template == template
    assert ours.eos_token == vllms.eos_token == config["eos_token"]
    for text in chat_texts(ours):
        for special in (False, True):
            expected = reference.encode(text, add_special_tokens=special).ids
            assert ids(ours, text, special) == expected, (text, special)
            assert ids(vllms, text, special) == expected, (text, special)
        expected = reference.encode(text, add_special_tokens=False).ids
        assert ours.decode(expected) == vllms.decode(expected) == reference.decode(expected, False)
    # a training pair: prompt and response ids are the joint tokenization of the template's text
    prompt, response = CONVERSATIONS[1]
    enc = encode_response(ours, prompt, response)
    full = ours.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
    )
    assert enc.input_ids == reference.encode(full, add_special_tokens=False).ids


def test_transformers_5_rebuilds_the_mistral_pipeline(repos):
    """Why the tokenizer is loaded as it is: AutoTokenizer (transformers 5, ``LlamaTokenizer`` rebuilt
    with a Metaspace pre-tokenizer) drops the "▁" the repo's normalizer adds before a text segment that
    starts with a space, so the template's ``<s> [INST]`` loses a token. Should this start failing,
    transformers loads the file as it is again, and the workaround may go."""
    repo = repos["mistral"]
    reference = Tokenizer.from_file(str(repo / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(repo)
    text = "<s> [INST] Name a colour. [/INST] Blue.</s>"
    assert reference.encode(text, add_special_tokens=False).tokens[:3] == ["<s>", "▁▁", "["]
    assert auto.convert_ids_to_tokens(ids(auto, text, False))[:3] == ["<s>", "▁[", "INST"]
    assert os.path.exists(repo / "tokenizer.model")  # the hub's layout: both files, as transformers sees it


def test_a_repo_without_tokenizer_json_is_loaded_by_its_class(tmp_path):
    """Only a SentencePiece file (no tokenizer.json): AutoTokenizer converts it, and vLLM is pointed at
    the repo itself rather than a saved copy of another class."""
    import mistral_common

    shutil.copy(
        Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1", tmp_path / "tokenizer.model"
    )
    config = {"tokenizer_class": "LlamaTokenizer", "legacy": True, "chat_template": MISTRAL_TEMPLATE}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = models.load_tokenizer(str(tmp_path), MODEL_CONFIG)
    assert type(tokenizer).__name__ == "LlamaTokenizer" and len(tokenizer) == 32000
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"
    assert tokenizer_files.save_for_loaders(tokenizer, tmp_path / "copy") is None
    assert not (tmp_path / "copy").exists()
