"""Loading a policy (model and tokenizer) the same way in every stage."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sppo.imports import without_sklearn

with without_sklearn():
    from transformers import AutoConfig, AutoModelForCausalLM

from sppo import hub, tokenizer_files
from sppo.devices import resolve_device, torch_dtype
from sppo.io import is_hub_repo_id

log = logging.getLogger(__name__)


def is_hub_model(path: str) -> bool:
    return not Path(path).exists() and is_hub_repo_id(path)


def revision(path: str, model_config: dict) -> str | None:
    """The revision to load: model.revision, else for a hub id the commit the run's fetch recorded."""
    if model_config.get("revision") or not is_hub_model(path):
        return model_config.get("revision")
    return hub.pinned(path)


def require_local(path: str, model_config: dict) -> None:
    """A hub id must be cached when the hub is offline (sppo.hub): fail naming it and the fetch."""
    if is_hub_model(path):
        hub.require_cached(path, revision(path, model_config))


def load_tokenizer(path: str, model_config: dict):
    """The tokenizer of ``path`` as its repo defines it (its ``tokenizer.json`` as it is:
    :mod:`sppo.tokenizer_files`), with a pad token and a chat template; every stage and vLLM use it."""
    require_local(path, model_config)
    tokenizer = tokenizer_files.load(path, revision(path, model_config), model_config["trust_remote_code"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise ValueError(f"{path}: the tokenizer has no chat template; SPPO renders prompts as chat turns")
    return tokenizer


def load_policy(path: str, model_config: dict, *, for_training: bool = False):
    """Load the causal LM and tokenizer at ``path`` (a local directory, or a hub id named in the config)."""
    return load_model(path, model_config, for_training=for_training), load_tokenizer(path, model_config)


def softcapping(config) -> float | None:
    """The attention-logit soft-cap c of a transformers config (Gemma-2: 50), or None: attention
    scores s become c·tanh(s/c) before the softmax."""
    return getattr(config.get_text_config(), "attn_logit_softcapping", None)


def attn_implementation(config, requested: str) -> str | None:
    """The attention implementation to load the model with (None: transformers' default).

    ``auto`` is eager for a model that soft-caps its attention logits, because transformers'
    default, sdpa, ignores the cap (the authors' transformers 4.42 forced eager for Gemma-2, and
    vLLM, which samples, applies the cap); for other models transformers' default. Any other value
    is used as given; sdpa on a soft-capping model is then a declared choice, logged.
    """
    cap = softcapping(config)
    if requested == "auto":
        return "eager" if cap is not None else None
    if cap is not None and requested == "sdpa":
        log.warning("model.attn_implementation sdpa ignores this model's attention soft-capping (%s)", cap)
    return requested


def attention_kwargs(path: str, requested: str, **source) -> dict:
    """``from_pretrained``'s attn_implementation argument for the model at ``path`` (nothing for
    transformers' default); ``source``: revision, trust_remote_code."""
    chosen = attn_implementation(AutoConfig.from_pretrained(path, **source), requested)
    return {"attn_implementation": chosen} if chosen else {}


def load_model(path: str, model_config: dict, *, for_training: bool = False):
    """The causal LM at ``path``. For inference it goes to the configured device and dtype in eval
    mode; for training it stays in float32 and the Trainer places it (under ZeRO-3, create the
    TrainingArguments first, so that the weights are partitioned while loading). Its attention
    implementation follows model.attn_implementation (see :func:`attn_implementation`)."""
    require_local(path, model_config)
    dtype = torch.float32 if for_training else torch_dtype(model_config["dtype"])
    source = dict(revision=revision(path, model_config), trust_remote_code=model_config["trust_remote_code"])
    attention = attention_kwargs(path, model_config["attn_implementation"], **source)
    model = AutoModelForCausalLM.from_pretrained(path, **source, dtype=dtype, **attention)
    if not for_training:
        model.to(resolve_device(model_config["device"])).eval()
    log.info(
        "loaded %s (%s, %s, %s attention)",
        path,
        type(model).__name__,
        dtype,
        model.config._attn_implementation,
    )
    return model
