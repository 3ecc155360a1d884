"""Test fixtures, not part of the pipeline: tiny offline judge checkpoints, built in well under a second.

No rule uses this module. It is shipped in the package only so that the tests, the benchmarks,
``.ci/gpu-smoke`` and ``tests/golden/make_pairrm_golden.py`` (which runs in a throwaway venv) can
all import it from the installed package.

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


# DeBERTa-v3's SentencePiece layout: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3 ([MASK] comes after the pieces).
_DEBERTA_SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]


def _nmt_nfkc_spec():
    """SentencePiece's own ``nmt_nfkc`` normalizer (NFKC plus its whitespace rules, as a precompiled
    character map), the one microsoft/deberta-v3's spm.model carries; taken from a throwaway model
    that SentencePiece trains on a few words."""
    import io

    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_WORDS * 4),
        model_writer=buffer,
        model_type="char",
        vocab_size=len(set("".join(_WORDS))) + 3,
        normalization_rule_name="nmt_nfkc",
        minloglevel=2,
    )
    return pb.ModelProto.FromString(buffer.getvalue()).normalizer_spec


def _write_spm_model(path: Path) -> None:
    """An spm.model in DeBERTa-v3's layout over :func:`_vocabulary`, normalizing as nmt_nfkc does."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    piece_type = pb.ModelProto.SentencePiece.Type
    model = pb.ModelProto()
    model.normalizer_spec.CopyFrom(_nmt_nfkc_spec())
    trainer = model.trainer_spec
    trainer.model_type = pb.TrainerSpec.UNIGRAM
    trainer.pad_id, trainer.bos_id, trainer.eos_id, trainer.unk_id = range(4)
    trainer.pad_piece, trainer.bos_piece, trainer.eos_piece, trainer.unk_piece = _DEBERTA_SPECIALS
    for piece, score in _vocabulary(_DEBERTA_SPECIALS):
        kind = piece_type.UNKNOWN if piece == "[UNK]" else piece_type.CONTROL
        model.pieces.add(
            piece=piece, score=score, type=kind if piece in _DEBERTA_SPECIALS else piece_type.NORMAL
        )
    path.write_bytes(model.SerializeToString())


def _save_deberta_tokenizer(backbone: Path):
    """Save DeBERTa-v3's tokenizer files as the hub has them (spm.model, tokenizer_config.json, no
    tokenizer.json), so that the installed transformers converts it as it converts the real one, and
    return the tokenizer loaded from there."""
    from transformers import AutoTokenizer

    backbone.mkdir(parents=True, exist_ok=True)
    _write_spm_model(backbone / "spm.model")
    (backbone / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "vocab_type": "spm"}))
    return AutoTokenizer.from_pretrained(backbone)


def _tiny_deberta(vocab_size: int, size: dict):
    """The DeBERTa-v3 layout at toy size: relative attention, 256 position buckets, no absolute positions."""
    from transformers import DebertaV2Config, DebertaV2Model

    config = DebertaV2Config(
        vocab_size=vocab_size,
        relative_attention=True,
        position_buckets=256,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pad_token_id=0,
        **size,
    )
    return DebertaV2Model(config)


def _fill(model: torch.nn.Module, seed: int, std: float) -> None:
    """Set every parameter as the usual initializations do, from one seeded generator in sorted name
    order: the backbone's matrices and embeddings std·N(0, 1) (BERT-style), the ranker head's matrices
    N(0, 1/(3·fan_in)) (the spread of torch's Linear default), norm weights 1, biases 0. The weights then
    depend on the seed and the parameter shapes only, not on how a transformers release initializes a
    model, so the same checkpoint comes out under transformers 4 and 5 (golden scores rely on it)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.dim() > 1:
                scale = std if name.startswith("pretrained_model.") else (3 * param.shape[1]) ** -0.5
                param.copy_(scale * torch.randn(param.shape, generator=generator, dtype=torch.float32))
            else:
                param.fill_(1.0 if "LayerNorm.weight" in name else 0.0)


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


TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
# A few million parameters (3.5M), deep and wide enough that float rounding differences would show.
SMALL = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}


def build_tiny_pairrm(out_dir: str | Path, seed: int = 0, std: float = 0.3, size: dict | None = None) -> Path:
    """Write a PairRM checkpoint with a DeBERTa-v2 backbone of ``size`` (default :data:`TINY`) to
    ``out_dir`` and return it.

    The ranker (backbone with PairRM's four prefix tokens added, plus the pairwise head) is built by
    llm-blender's own ``load_ranker`` from the saved backbone, so its layout is exactly what
    ``Blender.loadranker(out_dir)`` expects; its weights are then set by :func:`_fill`. A small ``std``
    (0.02, BERT's usual) makes every score ~1e-5 (all ties); 0.3 spreads them.
    """
    import safetensors.torch

    from sppo.judges import pairrm_compat

    pairrm_compat.apply()
    from llm_blender.blender.blender_utils import load_ranker
    from llm_blender.pair_ranker.config import RankerConfig

    out = Path(out_dir)
    backbone = out / "backbone"
    torch.manual_seed(seed)  # the backbone's own weights (replaced on loading by _fill) stay reproducible
    # Stored in float16, as microsoft/deberta-v3-large (PairRM's backbone) is: PairRM's float32 weights
    # must not be cast down when they are loaded over it (see sppo.judges.pairrm_compat).
    _tiny_deberta(len(_vocabulary(_DEBERTA_SPECIALS)) + 1, size or TINY).half().save_pretrained(backbone)
    tokenizer = _save_deberta_tokenizer(backbone)
    assert len(tokenizer) == len(_vocabulary(_DEBERTA_SPECIALS)) + 1, "the vocabulary plus [MASK]"
    config = _ranker_config(backbone)
    ranker, _, _ = load_ranker(RankerConfig.from_dict(config))
    _fill(ranker, seed, std)
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
