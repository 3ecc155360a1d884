"""Tiny offline judge checkpoints for tests and benchmarks, built in well under a second.

Both use real architectures and tokenizers with a fixed, explicit vocabulary (a trained tokenizer
gets run-dependent ids), so the same seed gives the same bytes.

* :func:`build_tiny_pairrm` writes a PairRM-format checkpoint that ``Blender.loadranker`` reads:
  ``<out>/config.json`` (llm-blender's RankerConfig, ``model_name`` = the absolute backbone path),
  ``<out>/model.safetensors`` (the whole ranker) and ``<out>/backbone`` (a DeBERTa-v2 model and tokenizer).
* :func:`build_tiny_reward_model` writes a Llama sequence classifier with one output (a reward model)
  and a tokenizer with a chat template.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

_WORDS = "the a an and of to in is it that for on with as are be this you not or what how can".split()


def _vocabulary(specials: list[str]) -> list[tuple[str, float]]:
    """Unigram pieces with log-probability scores: specials, words, then every character with and without
    the word-start marker ▁. Whole words score higher, so they win over spelling out their characters."""
    chars = string.ascii_letters + string.digits + string.punctuation + "\n"
    scores = {s: 0.0 for s in specials} | {"▁": -6.0} | {"▁" + w: -3.0 for w in _WORDS}
    for c in chars:
        scores.setdefault("▁" + c, -7.0)  # one-letter words are already there
        scores.setdefault(c, -8.0)
    return list(scores.items())


def _unigram_tokenizer(specials: list[str], unk: str, template: str) -> Tokenizer:
    """A SentencePiece-style Unigram tokenizer (Metaspace, like DeBERTa-v3's) over :func:`_vocabulary`;
    ``template`` is the post-processor's single-sequence template, e.g. ``"[CLS] $A [SEP]"``."""
    vocab = _vocabulary(specials)
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=specials.index(unk), byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    ids = {s: i for i, s in enumerate(specials)}
    used = [s for s in specials if s in template.split()]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(s, ids[s]) for s in used]
    )
    return tokenizer


def _deberta_tokenizer():
    """DeBERTa-v3's special tokens and layout ([PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3; [CLS] x [SEP])."""
    from transformers import DebertaV2TokenizerFast

    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    return DebertaV2TokenizerFast(
        tokenizer_object=_unigram_tokenizer(specials, "[UNK]", "[CLS] $A [SEP]"),
        bos_token="[CLS]",
        eos_token="[SEP]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        do_lower_case=False,
    )


def _tiny_deberta(vocab_size: int, initializer_range: float):
    """The DeBERTa-v3 layout at toy size: relative attention, 256 position buckets, no absolute positions."""
    from transformers import DebertaV2Config, DebertaV2Model

    config = DebertaV2Config(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        relative_attention=True,
        position_buckets=256,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        initializer_range=initializer_range,
        pad_token_id=0,
    )
    return DebertaV2Model(config)


def _ranker_config(backbone: Path) -> dict:
    """llm-blender's RankerConfig as PairRM's own config.json has it, with a local backbone (fields left
    at None are omitted: dataclasses_json warns about them)."""
    return {
        "ranker_type": "pairranker",
        "model_type": "deberta",
        "model_name": str(backbone.resolve()),
        "source_maxlength": 1224,
        "candidate_maxlength": 412,
        "n_tasks": 1,
        "num_pos": 5,
        "num_neg": 5,
        "sub_sampling_mode": "all_pair",
        "sub_sampling_ratio": 0.4,
        "loss_type": "instructgpt",
        "reduce_type": "linear",
        "inference_mode": "bubble",
        "drop_out": 0.05,
        "fp16": True,
    }


def build_tiny_pairrm(out_dir: str | Path, seed: int = 0, initializer_range: float = 0.5) -> Path:
    """Write a tiny PairRM checkpoint to ``out_dir`` and return it.

    The ranker (backbone with PairRM's four prefix tokens added, plus the pairwise head) is built by
    llm-blender's own ``load_ranker`` from the saved backbone, so its layout is exactly what
    ``Blender.loadranker(out_dir)`` expects. With the default initializer_range 0.02 every score
    is ~1e-5 (all ties); 0.5 spreads them.
    """
    import safetensors.torch
    from llm_blender.blender.blender_utils import load_ranker
    from llm_blender.pair_ranker.config import RankerConfig

    out = Path(out_dir)
    backbone = out / "backbone"
    torch.manual_seed(seed)
    tokenizer = _deberta_tokenizer()
    _tiny_deberta(len(tokenizer), initializer_range).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    config = _ranker_config(backbone)
    ranker, _, _ = load_ranker(RankerConfig.from_dict(config))
    safetensors.torch.save_model(ranker, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}{% endfor %}"
)


def build_tiny_reward_model(out_dir: str | Path, seed: int = 0, chat_template: bool = True) -> Path:
    """Write a tiny Llama reward model (sequence classifier, one logit) and its tokenizer to ``out_dir``.

    The tokenizer pads on the right with its own pad token and, with ``chat_template``, renders a
    conversation as ``<s>user: …</s>assistant: …</s>``.
    """
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    out = Path(out_dir)
    torch.manual_seed(seed)
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_unigram_tokenizer(specials, "<unk>", "<s> $A"),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="right",
        chat_template=_CHAT_TEMPLATE if chat_template else None,
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=0.2,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
