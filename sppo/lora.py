"""LoRA adapters for the train stage (train.lora; Hu et al., arXiv 2106.09685), through peft.

π_{t−1}'s weights are frozen, and each target linear layer W (out × in) trains as

    W' = W + (alpha / rank) · B · A,    A: rank × in (random at the start), B: out × rank (zeros)

so πθ = π_{t−1} at the first step, as in a full fine-tune (log πθ − log π_ref starts at 0), and only
A and B train, with the modules of train.lora.modules_to_save (peft trains a copy of each whole;
a tied embedding and head stay one matrix). At the end of the iteration :func:`save_merged` writes
W' (and the trained copies) into π_t's weights: π_t is a plain model that generation (transformers
or vLLM), reflogp, evaluation and the next iteration load as before. The adapter itself is kept
in π_t's ``ADAPTER_DIR`` (peft's format, its base π_{t−1}).
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
    other parameter frozen but trainable copies of the modules_to_save (a tied embedding and head
    stay one matrix: V·d more trainable parameters, not 2·V·d); A's random start drawn from
    ``seed``. Gradient checkpointing needs nothing more: transformers' checkpointing is
    non-reentrant and makes the input embeddings require gradients, so the adapters inside a
    checkpointed layer of frozen weights get theirs."""
    to_save = list(settings.get("modules_to_save", []))
    names = [name for name, _ in model.named_modules()]
    missing = [key for key in to_save if not any(name.endswith(key) for name in names)]
    if missing:  # peft would leave them out without a word
        raise ValueError(f"train.lora.modules_to_save: the model has no module named {missing}")
    config = LoraConfig(
        r=settings["rank"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=list(settings["target_modules"]),
        modules_to_save=to_save or None,
        # with tied embeddings, embed_tokens or lm_head trains as one matrix, so π_t stays tied:
        # otherwise the trained copy of one would be dropped or untie them when π_t is saved
        ensure_weight_tying=bool(to_save) and ties_embeddings(model),
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)  # before the Trainer seeds: π_t must not depend on what ran earlier
    model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    log.info("LoRA: %d of %d parameters train (%.3f%%)", trainable, total, 100 * trainable / total)
    return model


def ties_embeddings(model) -> bool:
    """Whether ``model``'s LM head is its input embedding matrix."""
    head = model.get_output_embeddings()
    return head is not None and head.weight is model.get_input_embeddings().weight


def save_merged(model, out_dir: Path) -> None:
    """π_t in ``out_dir``: the adapter of ``model`` (a peft model) in ``out_dir/ADAPTER_DIR``, then the
    weights with the adapter merged into them, as a plain transformers model."""
    adapter_dir = Path(out_dir) / ADAPTER_DIR
    model.save_pretrained(adapter_dir)
    (adapter_dir / "README.md").unlink(missing_ok=True)  # peft's blank model-card template
    model.merge_and_unload().save_pretrained(out_dir)
