"""Stage basemodel: build π_0 locally for the offline default (model.base: tiny).

A real transformers architecture (Llama or Gemma-2) with random weights, a byte-level BPE
tokenizer trained on the bundled prompts, and a chat template. Deterministic from the seed: the
same config gives the same bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from sppo.imports import without_sklearn

with without_sklearn():
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

log = logging.getLogger(__name__)

BOS, EOS, PAD = "<|bos|>", "<|end|>", "<|pad|>"
ROLE_TOKENS = ["<|user|>", "<|assistant|>", "<|system|>"]
# One turn: role token, newline, content, end-of-turn. The generation prompt ends with the
# assistant header, so a response's tokens are its content and the end-of-turn token only.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}"
    "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts``, with chat special tokens and left padding."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=ROLE_TOKENS,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )
    return tokenizer


def model_config(settings: dict, tokenizer: PreTrainedTokenizerFast):
    """The transformers config of the tiny model described by the config's ``tiny_model`` section."""
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=settings["hidden_size"],
        intermediate_size=settings["intermediate_size"],
        num_hidden_layers=settings["num_layers"],
        num_attention_heads=settings["num_heads"],
        num_key_value_heads=settings["num_heads"],
        max_position_embeddings=settings["max_position_embeddings"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    if settings["architecture"] == "gemma2":
        head_dim = settings["hidden_size"] // settings["num_heads"]
        return Gemma2Config(head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=256, **common)
    return LlamaConfig(**common)


def build(prompts: list[str], settings: dict, seed: int, out_dir: str | Path) -> None:
    """Train the tokenizer on ``prompts``, initialise the model from ``seed``, save both to ``out_dir``."""
    tokenizer = train_tokenizer(prompts, settings["vocab_size"])
    config = model_config(settings, tokenizer)
    torch.manual_seed(seed)
    model_cls = Gemma2ForCausalLM if settings["architecture"] == "gemma2" else LlamaForCausalLM
    model = model_cls(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built %s with %d parameters, vocabulary %d", model_cls.__name__, n_params, len(tokenizer))
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
