"""LoRA adapters for the train stage (train.lora; Hu et al., arXiv 2106.09685), through peft.

π_{t−1}'s weights are frozen, and each target linear layer W (out × in) trains as

    W' = W + (alpha / rank) · B · A,    A: rank × in (random at the start), B: out × rank (zeros)

so πθ = π_{t−1} at the first step, as in a full fine-tune (log πθ − log π_ref starts at 0), and only
A and B train. At the end of the iteration :func:`save_merged` writes W' into π_t's weights: π_t
is a plain model that generation (transformers or vLLM), reflogp, evaluation and the next
iteration load as before. The adapter itself is kept in π_t's ``ADAPTER_DIR`` (peft's format, its
base π_{t−1}).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sppo.imports import without_sklearn

with without_sklearn():
    from peft import LoraConfig, get_peft_model

log = logging.getLogger(__name__)

ADAPTER_DIR = "lora"  # inside π_t's directory; from_pretrained and vLLM read only the top level


def wrap(model, settings: dict, seed: int):
    """``model`` (a causal LM) with LoRA adapters as the train.lora section ``settings`` says, every
    other parameter frozen; A's random start drawn from ``seed``. Gradient checkpointing needs
    nothing more: transformers' checkpointing is non-reentrant and makes the input embeddings
    require gradients, so the adapters inside a checkpointed layer of frozen weights get theirs."""
    config = LoraConfig(
        r=settings["rank"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=list(settings["target_modules"]),
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)  # before the Trainer seeds: π_t must not depend on what ran earlier
    model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    log.info("LoRA: %d of %d parameters train (%.3f%%)", trainable, total, 100 * trainable / total)
    return model


def save_merged(model, out_dir: Path) -> None:
    """π_t in ``out_dir``: the adapter of ``model`` (a peft model) in ``out_dir/ADAPTER_DIR``, then the
    weights with the adapter merged into them, as a plain transformers model."""
    adapter_dir = Path(out_dir) / ADAPTER_DIR
    model.save_pretrained(adapter_dir)
    (adapter_dir / "README.md").unlink(missing_ok=True)  # peft's blank model-card template
    model.merge_and_unload().save_pretrained(out_dir)
