"""Stage generate: K sampled responses per prompt from the current policy.

Sample k of every prompt is drawn with its own seed (``generate.sample_seeds``; by default 50·k as
the reference runs did). Prompts go through the model in fixed batches of ``batch_size`` counted
over the whole iteration part, and sample k of batch b uses the seed (sample_seeds[k], b). Shards
are whole batches, so the responses do not depend on the number of shards.
"""

from __future__ import annotations

import logging
import time

import torch

from sppo import job
from sppo.chat import render_prompt

log = logging.getLogger(__name__)


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


@torch.inference_mode()
def sample(
    model, tokenizer, prompts: list[str], *, seed: int, temperature: float, top_p: float, max_new_tokens: int
) -> list[str]:
    """One response to each prompt, sampled from a generator seeded with ``seed`` (temperature 0: greedy)."""
    tokenizer.padding_side = "left"
    texts = [render_prompt(tokenizer, p) for p in prompts]
    batch = tokenizer(
        texts, add_special_tokens=False, padding=True, return_tensors="pt", return_token_type_ids=False
    ).to(model.device)
    sampling = (
        dict(do_sample=True, temperature=temperature, top_p=top_p)
        if temperature > 0
        else dict(do_sample=False)
    )
    torch.manual_seed(seed)
    out = model.generate(
        **batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, top_k=None, **sampling
    )
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def generate_shard(model, tokenizer, batches: list[tuple[int, list[dict]]], settings: dict) -> list[dict]:
    """Rows {id, prompt, responses} (K responses each) for every prompt of the shard's batches."""
    rows, started, done = [], time.monotonic(), 0
    total = sum(len(b) for _, b in batches)
    seeds = sample_seeds(settings)
    for index, batch in batches:
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
            )
            for seed in seeds
        ]
        rows += [
            {"id": r["id"], "prompt": r["prompt"], "responses": [s[i] for s in samples]}
            for i, r in enumerate(batch)
        ]
        done += len(batch)
        job.progress(log, f"generated (K={len(seeds)})", done, total, "prompts", started)
    return rows
