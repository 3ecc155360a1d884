"""llm-blender 0.0.2 under transformers 5: the four fixes the PairRM judge needs, applied in memory.

llm-blender's only release was written for transformers 4 and breaks on 5 in four ways:

1. ``import llm_blender`` fails: it imports ``transformers.utils.hub.TRANSFORMERS_CACHE``, which
   transformers 5 removed. Fix: give that module the attribute back, with the value transformers 4
   had (huggingface_hub's cache, ``HF_HUB_CACHE``), before llm_blender is imported.
2. ``Blender.rank`` / ``compare`` fail: the collator's ``encode_texts`` calls
   ``tokenizer.batch_encode_plus``, which transformers 5 removed. Fix: replace ``encode_texts`` in
   ``llm_blender.pair_ranker.collator`` by the same call through ``tokenizer(...)``, which takes the
   same arguments and returns the same ids (transformers 4 defined ``batch_encode_plus`` that way).
3. Silently, scores drift: ``build_pretrained_model`` loads the backbone with ``from_pretrained``,
   whose dtype defaults to ``"auto"`` in transformers 5, so a backbone stored in float16 (as
   microsoft/deberta-v3-large, PairRM's backbone, is) loads in float16, and PairRM's float32 weights
   loaded on top are cast down (seen: score changes of 1e-3). Fix: load the backbone in float32, as
   transformers 4 did by default, unless the caller asks for a dtype.
4. Silently, tokens change: transformers 5 builds DeBERTa-v2's tokenizer from ``spm.model`` with a
   normalizer of its own (NFC, every run of whitespace and each newline or tab to one space, right
   strip) instead of the one transformers 4 converted from the model file (SentencePiece's
   precompiled ``nmt_nfkc`` map, strip, runs of spaces to one). Texts with ligatures, full-width
   characters, no-break spaces, tabs or newlines then tokenize differently. Fix: after llm-blender
   builds the tokenizer, give it transformers 4's normalizer, made by the same converter code
   (``DebertaV2Converter.normalizer``, still in transformers 5) from the same ``spm.model``.

:func:`apply` makes all four changes once per process; it edits no installed file and changes
nothing under transformers 4 (each fix applies only where the transformers 5 behaviour is found).
The tests check, against golden scores made by llm-blender under transformers 4.57.6, that both
``Blender.rank`` with these fixes and :class:`sppo.judges.pairrm.PairRMJudge` score exactly as then.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import transformers.utils.hub


def _encode_texts(texts, tokenizer, max_length=None):
    """llm-blender's ``encode_texts``, calling the tokenizer instead of ``batch_encode_plus``."""
    p = tokenizer(texts, max_length=max_length, padding="max_length", return_tensors="pt", truncation=True)
    return p["input_ids"], p["attention_mask"]


def _float32_by_default(build):
    @functools.wraps(build)
    def wrapper(model_type, model_name, **kwargs):
        if "dtype" not in kwargs and "torch_dtype" not in kwargs:
            kwargs["dtype"] = torch.float32
        return build(model_type, model_name, **kwargs)

    return wrapper


def _normalizer_as_transformers_4(build):
    @functools.wraps(build)
    def wrapper(model_name, **kwargs):
        tokenizer = build(model_name, **kwargs)
        vocab_file = str(getattr(tokenizer, "vocab_file", None) or "")
        if type(tokenizer).__name__ == "DebertaV2Tokenizer" and vocab_file.endswith(".model"):
            from transformers.convert_slow_tokenizer import DebertaV2Converter, import_protobuf

            proto = import_protobuf().ModelProto.FromString(Path(vocab_file).read_bytes())
            converter = DebertaV2Converter.__new__(DebertaV2Converter)  # only its normalizer is used
            converter.original_tokenizer = tokenizer
            tokenizer.backend_tokenizer.normalizer = converter.normalizer(proto)
        return tokenizer

    return wrapper


@functools.cache
def apply() -> None:
    """Make llm-blender importable and exact under the installed transformers (idempotent)."""
    hub = transformers.utils.hub
    if not hasattr(hub, "TRANSFORMERS_CACHE"):
        from huggingface_hub.constants import HF_HUB_CACHE

        hub.TRANSFORMERS_CACHE = HF_HUB_CACHE

    from llm_blender.blender import blender_utils
    from llm_blender.pair_ranker import collator, model_util

    if not hasattr(transformers.PreTrainedTokenizerBase, "batch_encode_plus"):
        collator.encode_texts = _encode_texts
    if int(transformers.__version__.split(".")[0]) >= 5:
        model_util.build_pretrained_model = _float32_by_default(model_util.build_pretrained_model)
        blender_utils.build_tokenizer = _normalizer_as_transformers_4(blender_utils.build_tokenizer)
