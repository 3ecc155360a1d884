"""Sampling responses from a policy, shared by the stages that generate: generate (K samples per
prompt) and evaluate_answers (one answer per held-out prompt), with the backend of
``generate.backend`` (transformers here, vLLM in :mod:`sppo.sampling_vllm`).

Seeds. Sample k of every prompt is drawn with its own seed (``generate.sample_seeds``; by default
50·k as the reference runs did). Prompts go through the model in fixed batches of ``batch_size``
counted over the whole iteration part, and sample k of batch b uses the seed (sample_seeds[k], b).
Shards are whole batches, so the responses do not depend on the number of shards.

Why a sample ended (``finish_reasons``, one per response): "stop" where the model ended it (an
end-of-sequence token: for a chat model its end-of-turn marker), "length" where it reached
``max_new_tokens`` first, i.e. the response is cut. vLLM reports this itself (``finish_reason``);
for transformers a response without an end-of-sequence token among its new tokens ran to the limit.

Prompts that do not fit. A prompt whose rendered tokens plus the generation budget
(``max_new_tokens``) exceed the model's context (``max_position_embeddings``, from which vLLM
derives its ``max_model_len``) is handled before any model is loaded, by ``generate.long_prompts``:
"drop" leaves it out; "cut" keeps the end of its text (TRL's keep_end, as train cuts prompts), just
short enough to fit, and the cut text is the prompt from then on. vLLM refuses a prompt of
``max_model_len`` tokens or more outright, which would fail the whole job on every retry.
"""

from __future__ import annotations

import logging
import time

import torch

from sppo import job
from sppo.chat import prompt_ids, prompt_text

log = logging.getLogger(__name__)

FINISH_REASONS = ("stop", "length")
LONG_PROMPTS = ("drop", "cut")


def shard_rows(rows: list[dict], shard: int, shards: int, batch_size: int) -> list[tuple[int, list[dict]]]:
    """The (batch index, batch) pairs of shard ``shard`` of ``shards``: contiguous runs of whole batches."""
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    per_shard, extra = divmod(len(batches), shards)
    start = shard * per_shard + min(shard, extra)
    stop = start + per_shard + (shard < extra)
    return [(b, batches[b]) for b in range(start, stop)]


def sample_seeds(settings: dict) -> list[int]:
    """The per-sample seeds: ``generate.sample_seeds`` or the reference's 0, 50, 100, …"""
    return settings.get("sample_seeds") or [50 * k for k in range(settings["k"])]


def batch_seed(sample_seed: int, batch_index: int) -> int:
    return sample_seed * 1_000_003 + batch_index


# ---------------------------------------------------------------------------------------------
# Prompts against the context


def context_length(model_path: str, model_config: dict) -> int | None:
    """The longest sequence the model at ``model_path`` takes (its config's max_position_embeddings,
    GPT-2's n_positions through the same name), or None where its config does not say."""
    from sppo.imports import without_sklearn

    with without_sklearn():
        from transformers import AutoConfig

    config = AutoConfig.from_pretrained(
        model_path, revision=model_config.get("revision"), trust_remote_code=model_config["trust_remote_code"]
    )
    config = getattr(config, "text_config", None) or config
    return getattr(config, "max_position_embeddings", None)


def prompt_tokens(tokenizer, prompt: str, template: str | None = None) -> int:
    """Tokens of the prompt as the model reads it (:func:`sppo.chat.prompt_ids`)."""
    return len(prompt_ids(tokenizer, prompt, template))


def cut_prompt(tokenizer, prompt: str, limit: int, template: str | None = None) -> str | None:
    """An end of ``prompt`` whose rendered tokens are at most ``limit`` (as long as that allows, to
    within the few tokens that merge differently at the cut), or None where even the template alone
    does not fit. Cuts at token boundaries of the text on its own and re-checks the rendered result."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    keep = len(ids) - (prompt_tokens(tokenizer, prompt, template) - limit)
    while keep > 0:
        text = tokenizer.decode(ids[-keep:])
        excess = prompt_tokens(tokenizer, text, template) - limit
        if excess <= 0:
            return text
        keep -= excess
    return None


def fit_batches(
    tokenizer,
    batches: list[tuple[int, list[dict]]],
    budget: int,
    context: int | None,
    rule: str,
    template: str | None = None,
) -> tuple[list[tuple[int, list[dict | None]]], dict]:
    """``batches`` with every prompt whose rendered tokens + ``budget`` exceed ``context`` cut or
    dropped (``rule``: see the module docstring), and the counts. A dropped prompt leaves None in its
    batch, so no other prompt's position (and seed) moves. ``template``: :func:`sppo.chat.prompt_text`."""
    stats = {"prompts": 0, "cut": 0, "dropped": 0, "context": context, "budget": budget, "long_prompts": rule}
    if rule not in LONG_PROMPTS:
        raise ValueError(f"generate.long_prompts: {rule!r} is none of {LONG_PROMPTS}")
    if context is None:
        log.warning("the model's config states no context length: prompt lengths are not checked")
    out = []
    for index, batch in batches:
        fitted = []
        for row in batch:
            stats["prompts"] += 1
            if context is None or prompt_tokens(tokenizer, row["prompt"], template) + budget <= context:
                fitted.append(row)
                continue
            text = cut_prompt(tokenizer, row["prompt"], context - budget, template) if rule == "cut" else None
            stats["cut" if text is not None else "dropped"] += 1
            fitted.append(None if text is None else {**row, "prompt": text})
        out.append((index, fitted))
    log.info(
        "%d prompts; %d cut and %d dropped: rendered tokens + %d new tokens exceed the context %s",
        stats["prompts"],
        stats["cut"],
        stats["dropped"],
        budget,
        context,
    )
    return out, stats


# ---------------------------------------------------------------------------------------------
# The transformers backend


def finish_reasons(new_tokens: torch.Tensor, eos_ids: list[int]) -> list[str]:
    """Per row of generated tokens: "stop" if it holds an end-of-sequence token, else "length"."""
    ended = torch.isin(new_tokens, torch.tensor(eos_ids, device=new_tokens.device)).any(dim=1)
    return ["stop" if e else "length" for e in ended.tolist()]


def eos_token_ids(model, tokenizer, extra: list[int] = ()) -> list[int]:
    """The token ids on which ``generate`` ends a sequence: the generation config's, else the
    tokenizer's; and ``extra`` (stop tokens a setting adds, as vLLM's ``stop_token_ids``)."""
    ids = model.generation_config.eos_token_id
    if ids is None:
        ids = tokenizer.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids)
    return ids + [i for i in extra if i not in ids]


@torch.inference_mode()
def sample(
    model,
    tokenizer,
    prompts: list[str],
    *,
    seed: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    template: str | None = None,
    stop_token_ids: list[int] = (),
) -> tuple[list[str], list[str]]:
    """One response to each prompt, sampled from a generator seeded with ``seed`` (temperature 0:
    greedy), and why each ended (:func:`finish_reasons`). ``template``: :func:`sppo.chat.prompt_ids`;
    ``stop_token_ids``: end a response there too."""
    tokenizer.padding_side = "left"
    texts = [prompt_text(tokenizer, p, template) for p in prompts]
    batch = tokenizer(
        texts,
        add_special_tokens=template is not None,  # as sppo.chat.prompt_ids
        padding=True,
        return_tensors="pt",
        return_token_type_ids=False,
    ).to(model.device)
    eos = eos_token_ids(model, tokenizer, stop_token_ids)
    sampling = (
        dict(do_sample=True, temperature=temperature, top_p=top_p)
        if temperature > 0
        else dict(do_sample=False)
    )
    torch.manual_seed(seed)
    out = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        top_k=None,
        **sampling,
        **({"eos_token_id": eos} if stop_token_ids else {}),  # else the generation config's, unchanged
    )
    new = out[:, batch["input_ids"].shape[1] :]
    reasons = finish_reasons(new, eos)
    return tokenizer.batch_decode(new, skip_special_tokens=True), reasons


def generate_shard(model, tokenizer, batches, settings: dict) -> list[dict]:
    """Rows {id, prompt, responses, finish_reasons} (K each) for every prompt of the shard's batches
    (None: a dropped prompt, skipped)."""
    rows, started, done = [], time.monotonic(), 0
    total = sum(r is not None for _, b in batches for r in b)
    seeds = sample_seeds(settings)
    for index, batch in batches:
        batch = [r for r in batch if r is not None]
        if not batch:
            continue
        prompts = [r["prompt"] for r in batch]
        samples = [
            sample(
                model,
                tokenizer,
                prompts,
                seed=batch_seed(seed, index),
                temperature=settings["temperature"],
                top_p=settings["top_p"],
                max_new_tokens=settings["max_new_tokens"],
                template=settings.get("prompt_template"),
                stop_token_ids=settings.get("stop_token_ids", ()),
            )
            for seed in seeds
        ]
        rows += [
            {
                "id": r["id"],
                "prompt": r["prompt"],
                "responses": [texts[i] for texts, _ in samples],
                "finish_reasons": [reasons[i] for _, reasons in samples],
            }
            for i, r in enumerate(batch)
        ]
        done += len(batch)
        job.progress(log, f"generated (K={len(seeds)})", done, total, "prompts", started)
    return rows


# ---------------------------------------------------------------------------------------------
# Both backends


def respond(
    model_path: str, model_config: dict, prompts: list[dict], shard: int, shards: int, settings: dict
) -> tuple[list[dict], dict]:
    """Rows {id, prompt, responses, finish_reasons} for shard ``shard`` of ``shards`` of ``prompts``
    ({id, prompt}), sampled by ``settings["backend"]`` after the prompts were fitted to the context;
    and the counts of :func:`fit_batches` with ``responses`` and ``responses_cut`` (finish "length")."""
    from sppo import models

    tokenizer = models.load_tokenizer(model_path, model_config)
    batches, stats = fit_batches(
        tokenizer,
        shard_rows(prompts, shard, shards, settings["batch_size"]),
        settings["max_new_tokens"],
        context_length(model_path, model_config),
        settings["long_prompts"],
        settings.get("prompt_template"),
    )
    if settings["backend"] == "vllm":
        from sppo import sampling_vllm

        rows = sampling_vllm.generate_shard(model_path, model_config, batches, settings)
    else:
        rows = generate_shard(models.load_model(model_path, model_config), tokenizer, batches, settings)
    reasons = [reason for row in rows for reason in row["finish_reasons"]]
    stats["responses"], stats["responses_cut"] = len(reasons), reasons.count("length")
    log.info("%d of %d responses reached max_new_tokens (cut)", stats["responses_cut"], len(reasons))
    return rows, stats
