"""GPU figures of the heavy stages, on random-weight models of the real shapes, built locally (no hub).

    ./run python -m benchmarks.gpu --json gpu.json            # on a CUDA machine, real shapes
    ./run python -m benchmarks.gpu --tiny --device cpu        # the same code at toy shapes
    ./run python -m benchmarks.gpu --parts judge train        # some parts only
    ./run python -m benchmarks.gpu --parts single_gpu         # the single-GPU recipes' memory
    ./run python -m benchmarks.gpu --parts train_packing      # padded vs packed micro-batches

generate  tokens/s of sampling with the recipes' settings (temperature 0.7, top p 0.9, K = 5
          requests per prompt, prompts of 30–360 tokens) for a Gemma-2-9B- and a Llama-3-8B-shaped
          model in bfloat16: with vLLM (its dummy weights, token-id prompts, no tokenizer) when vllm
          is installed, and with transformers' ``generate`` (the workflow's other backend). Every
          response is exactly ``--max-new-tokens`` long (EOS is ignored), so tokens/s compare.
judge     pairs/s of PairRM on a DeBERTa-v3-large-shaped ranker (24 layers, hidden 1024; weights
          N(0, 0.02), vocabulary of the tiny tokenizer) at realistic SPPO lengths
          (benchmarks/workloads.py): (a) ``Blender.rank(batch_size=1)``, the authors' call, with the
          weights in float32 and in float16 (``loadranker``'s default on cuda), against (b)
          ``PairRMJudge`` in float32 and float16 at each ``--batch-tokens``.
train     one SPPO optimizer step (the recipe's: bf16 autocast over float32 weights, RMSprop,
          gradient clipping at 1, gradient checkpointing) of a Gemma-2-2B-shaped model on
          ``--pairs`` pairs of ``--prompt-len`` + ``--response-len`` tokens: the workflow's pattern
          (reference log-probs precomputed, one model in memory) against the authors' (a frozen
          reference model run on every step). Tokens/s, MFU (6·N·tokens per step over the GPU's
          dense bf16 peak; N counts every parameter, attention FLOPs and the recomputation are
          not counted) and peak GPU memory; the one-model step also with the response log-probs
          computed in pieces (``--logprob-chunks``, as train.logprob_chunk). The first step's loss
          must be the same in all.
train_packing  SPPO optimizer steps of the Gemma-2-2B-shaped model (as ``train``) on micro-batches of
          ``--pairs`` pairs of realistic varying lengths (benchmarks.workloads.varying_groups:
          prompts 30–360 tokens, responses 80–2000, cut to ``--max-length`` as the recipes cut,
          truncation pair), one micro-batch per step, the same ones padded (the default) and
          packed (train.packing), under each ``--packing-attention`` implementation, log-probs in
          pieces of ``--packing-chunk``. Tokens/s and MFU count the real tokens only (6·N·real
          tokens per second over the dense bf16 peak; no pads, no attention FLOPs, no
          recomputation); positions/s counts what was computed, pads included. The reference
          log-probs (the model's before the first step, bf16 autocast) of packed and padded
          batches are compared: their largest difference is reported.
single_gpu  one SPPO optimizer step of each single-GPU recipe (config/recipes/*-1gpu.yaml) at its
          model's shape and with its train settings (per-device pairs, bf16 autocast, gradient
          checkpointing, logprob_chunk, LoRA as train.lora says): peak GPU memory, s/step and the
          parameters that train, for the recipes' memory arithmetic. Llama-3.2-1B-shaped full
          fine-tune (RoPE scaling left out: no effect on memory or time) and Gemma-2-9B-shaped LoRA.

Parts run one after the other in this process; each times its sides in the same run after a
warm-up. The table is printed, and written as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from benchmarks.workloads import (
    REALISTIC,
    SHORT,
    pair_batch,
    random_token_prompts,
    realistic_texts,
    varying_groups,
)
from sppo import lora
from sppo.config import validate
from sppo.logprobs import IGNORE, collate_groups, response_logps
from sppo.losses import per_prompt

# Real shapes (from the models' config.json) and toy shapes with the same layout, for --tiny.
GEMMA2 = dict(
    model_type="gemma2",
    query_pre_attn_scalar=256,
    attn_logit_softcapping=50.0,
    final_logit_softcapping=30.0,
    sliding_window=4096,
    max_position_embeddings=8192,
    head_dim=256,
)
SHAPES = {
    "gemma-2-9b": GEMMA2
    | dict(
        vocab_size=256000,
        hidden_size=3584,
        intermediate_size=14336,
        num_hidden_layers=42,
        num_attention_heads=16,
        num_key_value_heads=8,
    ),
    "gemma-2-2b": GEMMA2
    | dict(
        vocab_size=256000,
        hidden_size=2304,
        intermediate_size=9216,
        num_hidden_layers=26,
        num_attention_heads=8,
        num_key_value_heads=4,
    ),
    "llama-3.2-1b": dict(
        model_type="llama",
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        tie_word_embeddings=True,
        rope_theta=500000.0,
        max_position_embeddings=131072,
    ),
    "llama-3-8b": dict(
        model_type="llama",
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        rope_theta=500000.0,
        max_position_embeddings=8192,
    ),
    "deberta-v3-large": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
}
# The same layouts at toy size: every model two layers of width 64 (Gemma's heads of 32).
TOY = dict(
    vocab_size=1000,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
)
TINY = {name: SHAPES[name] | TOY for name in ("gemma-2-9b", "gemma-2-2b", "llama-3.2-1b", "llama-3-8b")}
TINY["gemma-2-9b"]["head_dim"] = TINY["gemma-2-2b"]["head_dim"] = 32
TINY["deberta-v3-large"] = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
)

# Dense bf16 peak of the GPUs this benchmark has met (NVIDIA's data sheets, without sparsity).
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def model_config(shape: dict):
    """The transformers config of a causal LM of ``shape`` (token ids 0 and 1 for padding and EOS)."""
    from transformers import AutoConfig

    fields = dict(shape)
    return AutoConfig.for_model(fields.pop("model_type"), **fields, pad_token_id=0, eos_token_id=1)


def causal_lm(shape: dict, device: torch.device, dtype: torch.dtype, seed: int, attention: str | None = None):
    """A random-weight causal LM of ``shape``, built on ``device`` (the same seed: the same weights),
    with the ``attention`` implementation (None: transformers' default)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    kwargs = {"attn_implementation": attention} if attention else {}
    with torch.device(device):
        return AutoModelForCausalLM.from_config(model_config(shape), dtype=dtype, **kwargs)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# ---------------------------------------------------------------- generate


def transformers_generate(name: str, shape: dict, args, device: torch.device) -> dict:
    """Tokens/s of ``model.generate`` on a batch of ``--gen-batch`` left-padded prompts."""
    model = causal_lm(shape, device, torch.bfloat16, args.seed).eval()
    prompts = random_token_prompts(args.gen_batch, shape["vocab_size"], args.seed)
    width = max(map(len, prompts))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)

    def run(model, new_tokens: int):
        sync(device)
        start = time.perf_counter()
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            temperature=0.7,
            top_p=0.9,
            top_k=None,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=0,
        )
        sync(device)
        return time.perf_counter() - start, out.shape[1] - width

    with torch.inference_mode():
        run(model, 4)  # warm-up
        seconds, new = run(model, args.max_new_tokens)
    del model
    reset_memory(device)
    tokens = len(prompts) * new
    return {
        "part": "generate",
        "backend": "transformers",
        "model": name,
        "requests": len(prompts),
        "new_tokens_each": new,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
    }


def vllm_generate(name: str, shape: dict, args) -> dict:
    """Tokens/s of vLLM with dummy weights: K requests per prompt, each with its own seed (as
    sppo.sampling_vllm sends them), prompts given as token ids."""
    import vllm

    with tempfile.TemporaryDirectory() as tmp:
        model_config(shape).save_pretrained(tmp)
        llm = vllm.LLM(
            model=tmp,
            load_format="dummy",
            skip_tokenizer_init=True,
            dtype="bfloat16",
            seed=args.seed,
            gpu_memory_utilization=0.85,
            enable_prefix_caching=True,
            max_model_len=4096,
        )
        prompts = random_token_prompts(args.vllm_prompts, shape["vocab_size"], args.seed)
        requests = [{"prompt_token_ids": p} for p in prompts for _ in range(args.k)]

        def params(n: int):
            return [
                vllm.SamplingParams(
                    n=1,
                    seed=50 * (i % args.k) + i // args.k,
                    temperature=0.7,
                    top_p=0.9,
                    max_tokens=n,
                    ignore_eos=True,
                    detokenize=False,
                )
                for i in range(len(requests))
            ]

        llm.generate(requests[: args.k], params(8)[: args.k], use_tqdm=False)  # warm-up
        start = time.perf_counter()
        outputs = llm.generate(requests, params(args.vllm_max_new_tokens), use_tqdm=False)
        seconds = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    del llm
    reset_memory(torch.device("cuda"))
    return {
        "part": "generate",
        "backend": "vllm",
        "model": name,
        "requests": len(requests),
        "new_tokens_each": args.vllm_max_new_tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
    }


def generate_part(shapes: dict, args, device: torch.device) -> list[dict]:
    rows = []
    for name in ("gemma-2-9b", "llama-3-8b"):
        if device.type == "cuda" and importlib.util.find_spec("vllm"):
            rows.append(vllm_generate(name, shapes[name], args))
        else:
            rows.append({"part": "generate", "backend": "vllm", "model": name, "skipped": skip_vllm(device)})
        rows.append(transformers_generate(name, shapes[name], args, device))
    return rows


def skip_vllm(device: torch.device) -> str:
    return "vllm is not installed" if device.type == "cuda" else "vLLM needs a GPU"


# ---------------------------------------------------------------- judge


def judge_part(shapes: dict, args, device: torch.device) -> list[dict]:
    from sppo.judges import pairrm_compat
    from sppo.judges.pairrm import PairRMJudge
    from sppo.judges.tiny import build_tiny_pairrm

    pairrm_compat.apply()  # before llm_blender is imported
    from llm_blender import Blender, BlenderConfig

    lengths = SHORT if args.tiny else REALISTIC
    prompts, candidates = realistic_texts(args.judge_prompts, args.k, args.seed, lengths)
    pairs = len(prompts) * args.k * (args.k - 1)
    sides = {}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = build_tiny_pairrm(tmp, seed=args.seed, std=0.02, size=shapes["deberta-v3-large"])
        for fp16 in (False, True):
            blender = Blender(BlenderConfig(device=str(device), use_tqdm=False))
            blender.loadranker(str(checkpoint), device=str(device), fp16=fp16)
            sides[f"(a) Blender.rank(batch_size=1) {'float16' if fp16 else 'float32'}"] = (blender, None)
        for dtype in ("float32", "float16"):
            judge = PairRMJudge(str(checkpoint), str(device), dtype, batch_size=32)  # the recipes
            for tokens in args.batch_tokens:  # one judge per dtype, its batch_tokens set per run
                sides[f"(b) PairRMJudge {dtype} batch_tokens={tokens}"] = (judge, tokens)

    def run(side, p, c):
        model, tokens = side
        if tokens is None:
            return model.rank(p, c, return_scores=True, batch_size=1, disable_tqdm=True)
        model.batch_tokens = tokens
        return model.judge(p, c).scores

    rows, reference = [], None
    for label, side in sides.items():
        run(side, prompts[:2], candidates[:2])  # warm-up
        sync(device)
        start = time.perf_counter()
        scores = run(side, prompts, candidates)
        sync(device)
        seconds = time.perf_counter() - start
        reference = scores if reference is None else reference
        rows.append(
            {
                "part": "judge",
                "side": label,
                "pairs": pairs,
                "seconds": seconds,
                "pairs_per_s": pairs / seconds,
                "max_abs_score": float(abs(scores).max()),
                "max_abs_diff_vs_first": float(abs(scores - reference).max()),
            }
        )
    del sides
    reset_memory(device)
    first = rows[0]["seconds"]
    for row in rows:
        row["speedup_vs_first"] = first / row["seconds"]
    return rows


# ---------------------------------------------------------------- train


def training_model(shape: dict, device: torch.device, seed: int, attention: str | None = None):
    """A causal LM of ``shape`` as the recipes train it: float32 weights, gradient checkpointing."""
    model = causal_lm(shape, device, torch.float32, seed, attention)
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model.train()


def sppo_steps(model, batch: dict, *, live_reference: bool, chunk: int, steps: int, bf16=True, ready=None):
    """``steps`` SPPO optimizer steps of ``model`` on ``batch`` (RMSprop at the recipes' 5e-7, clipping at
    1, η = 1000), the response log-probs in pieces of ``chunk`` (0: full logits), under bf16 autocast.

    The reference log-probs are the model's own before the first step, computed once (the workflow's
    reflogp stage) or, with ``live_reference``, by a frozen copy run on every step (the authors).
    ``ready()``, if given, is called once the reference and optimizer exist, before the first step.
    Returns the losses, each step's seconds, the first step's largest |r| (0 up to rounding) and
    summed policy log-probs, and what ``ready`` returned."""
    device = batch["input_ids"].device

    def logps(m):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return response_logps(m, batch, chunk)

    reference = fixed = None
    if live_reference:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    else:
        with torch.no_grad():
            fixed = logps(model)  # what the reflogp stage stores
    optimizer = torch.optim.RMSprop(model.parameters(), lr=5e-7)
    out = {"losses": [], "times": [], "ready": ready() if ready else None}
    n, m = batch["win_rates"].shape
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        if reference is not None:
            with torch.no_grad():
                ref = logps(reference)
        else:
            ref = fixed
        policy = logps(model)
        ratios = (policy - ref).view(m, n).T  # per prompt: its responses (the chosen, the rejected)
        loss = per_prompt("sppo", ratios, eta=1000.0, beta=1.0, win_rates=batch["win_rates"])
        loss.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not out["losses"]:
            out["first_max_abs_r"] = float((policy - ref).abs().max())
            out["first_logps_sum"] = float(policy.sum())
        out["losses"].append(loss.mean().item())
        sync(device)
        out["times"].append(time.perf_counter() - start)
    return out


def train_part(shapes: dict, args, device: torch.device) -> list[dict]:
    """The workflow's one-model step (full logits, then each ``--logprob-chunks`` size) against the
    authors' live-reference step (full logits), same batch, same start."""
    shape = shapes["gemma-2-2b"]
    batch = pair_batch(args.pairs, args.prompt_len, args.response_len, shape["vocab_size"], args.seed)
    batch = {k: v.to(device) for k, v in batch.items()}
    tokens = batch["input_ids"].numel()
    rows = []
    variants = [("one model (precomputed reference)", 0), ("live reference model", 0)]
    variants += [("one model (precomputed reference)", chunk) for chunk in args.logprob_chunks]
    for pattern, chunk in variants:
        reset_memory(device)
        model = training_model(shape, device, args.seed)
        n_params = sum(p.numel() for p in model.parameters())
        run = sppo_steps(
            model,
            batch,
            live_reference=pattern.startswith("live"),
            chunk=chunk,
            steps=args.warmup_steps + args.steps,
        )
        step = statistics.median(run["times"][args.warmup_steps :])
        peak = PEAK_BF16.get(gpu_family(device))
        rows.append(
            {
                "part": "train",
                "pattern": pattern,
                "logprob_chunk": chunk,
                "model": f"gemma-2-2b-shaped ({n_params / 1e9:.2f}B parameters)",
                "tokens_per_step": tokens,
                "step_seconds_median": step,
                "tokens_per_s": tokens / step,
                "mfu": 6 * n_params * tokens / step / peak if peak else None,
                "peak_memory_gib": peak_memory_gib(device),
                "first_loss": run["losses"][0],
            }
        )
        del model, run
    reset_memory(device)
    return rows


# ---------------------------------------------------------------- train_packing


def micro_batches(shape: dict, args, packed: bool, device: torch.device) -> list[dict]:
    """One micro-batch of ``--pairs`` varying-length pairs per step (warm-up steps included), padded
    or packed, each with win rates P̂ of its chosen and rejected responses."""
    steps = args.warmup_steps + args.steps
    groups = varying_groups(
        steps * args.pairs,
        shape["vocab_size"],
        args.seed,
        max_length=args.max_length,
        max_prompt_length=args.max_length // 2,
        truncation="pair",
        lengths=SHORT if args.tiny else REALISTIC,
    )
    generator = torch.Generator().manual_seed(args.seed)
    batches = []
    for step in range(steps):
        batch = collate_groups(groups[step * args.pairs : (step + 1) * args.pairs], 0, packed)
        p_win = 0.5 + 0.5 * torch.rand(args.pairs, generator=generator)
        batch["win_rates"] = torch.stack([p_win, 1 - p_win], dim=1)
        batches.append({k: v.to(device) for k, v in batch.items()})
    return batches


def varying_steps(model, batches: list[dict], chunk: int) -> dict:
    """One SPPO optimizer step per batch (as :func:`sppo_steps`: bf16 autocast, RMSprop at 5e-7,
    clipping at 1, η = 1000), against reference log-probs of the model before the first step."""
    device = batches[0]["input_ids"].device

    def logps(batch):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return response_logps(model, batch, chunk)

    with torch.no_grad():
        references = [logps(batch) for batch in batches]  # what the reflogp stage stores
    optimizer = torch.optim.RMSprop(model.parameters(), lr=5e-7)
    out = {"losses": [], "times": [], "references": torch.cat(references).float().cpu()}
    for batch, ref in zip(batches, references, strict=True):
        sync(device)
        start = time.perf_counter()
        n, m = batch["win_rates"].shape
        ratios = (logps(batch) - ref).view(m, n).T
        loss = per_prompt("sppo", ratios, eta=1000.0, beta=1.0, win_rates=batch["win_rates"]).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        out["losses"].append(loss.item())
        sync(device)
        out["times"].append(time.perf_counter() - start)
    return out


def train_packing_part(shapes: dict, args, device: torch.device) -> list[dict]:
    """Padded against packed micro-batches of varying lengths, per attention implementation."""
    shape = shapes["gemma-2-2b"]
    rows = []
    for attention in args.packing_attention:
        padded_references = None
        for packed in (False, True):
            batches = micro_batches(shape, args, packed, device)
            measured = batches[args.warmup_steps :]
            # the real tokens: a padded batch's attention mask, all of a packed one
            real = sum(
                int(b["attention_mask"].sum()) if not packed else b["input_ids"].numel() for b in measured
            )
            positions = sum(b["input_ids"].numel() for b in measured)
            responses = sum(int((b["labels"] != IGNORE).sum()) for b in measured)
            reset_memory(device)
            model = training_model(shape, device, args.seed, attention)
            n_params = sum(p.numel() for p in model.parameters())
            run = varying_steps(model, batches, args.packing_chunk)
            seconds = sum(run["times"][args.warmup_steps :])
            if padded_references is None:
                padded_references = run["references"]
            peak = PEAK_BF16.get(gpu_family(device))
            rows.append(
                {
                    "part": "train_packing",
                    "attention": attention,
                    "batches": "packed" if packed else "padded",
                    "logprob_chunk": args.packing_chunk,
                    "model": f"gemma-2-2b-shaped ({n_params / 1e9:.2f}B parameters)",
                    "steps": len(measured),
                    "real_tokens": real,
                    "positions": positions,
                    "response_tokens": responses,
                    "seconds": seconds,
                    "tokens_per_s": real / seconds,
                    "positions_per_s": positions / seconds,
                    "mfu": 6 * n_params * real / seconds / peak if peak else None,
                    "peak_memory_gib": peak_memory_gib(device),
                    "losses": run["losses"],
                    "max_abs_ref_logp_diff_vs_padded": float(
                        (run["references"] - padded_references).abs().max()
                    ),
                }
            )
            del model, run, batches
    reset_memory(device)
    return rows


# ---------------------------------------------------------------- single_gpu

# The single-GPU recipes and the shapes of their models.
SINGLE_GPU = {"llama-3.2-1b-instruct-1gpu": "llama-3.2-1b", "gemma-2-9b-it-lora-1gpu": "gemma-2-9b"}


def recipe_train(name: str) -> dict:
    """The validated train section of config/recipes/NAME.yaml."""
    path = Path(__file__).resolve().parents[1] / "config" / "recipes" / f"{name}.yaml"
    return validate(yaml.safe_load(path.read_text()))["train"]


def single_gpu_part(shapes: dict, args, device: torch.device) -> list[dict]:
    """One step of each single-GPU recipe, as it trains: its per-device pairs of ``--prompt-len`` +
    ``--response-len`` tokens, float32 weights, gradient checkpointing, bf16 autocast, RMSprop,
    log-probs in pieces of its logprob_chunk, LoRA adapters where its train.lora is enabled."""
    rows = []
    for recipe, shape_name in SINGLE_GPU.items():
        train, shape = recipe_train(recipe), shapes[shape_name]
        assert train["gradient_checkpointing"] and train["num_processes"] == 1, recipe
        pairs = train["per_device_batch_size"]
        batch = pair_batch(pairs, args.prompt_len, args.response_len, shape["vocab_size"], args.seed)
        batch = {k: v.to(device) for k, v in batch.items()}
        reset_memory(device)
        model = training_model(shape, device, args.seed)
        if train["lora"]["enabled"]:
            model = lora.wrap(model, train["lora"], args.seed)
        run = sppo_steps(
            model,
            batch,
            live_reference=False,
            chunk=train["logprob_chunk"],
            steps=args.warmup_steps + args.steps,
            bf16=train["bf16"],
        )
        step = statistics.median(run["times"][args.warmup_steps :])
        rows.append(
            {
                "part": "single_gpu",
                "recipe": recipe,
                "model": f"{shape_name}-shaped",
                "lora": train["lora"]["enabled"],
                "parameters": sum(p.numel() for p in model.parameters()),
                "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "pairs": pairs,
                "tokens_per_step": batch["input_ids"].numel(),
                "step_seconds_median": step,
                "peak_memory_gib": peak_memory_gib(device),
                "first_loss": run["losses"][0],
            }
        )
        del model, run
    reset_memory(device)
    return rows


def gpu_family(device: torch.device) -> str | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((family for family in PEAK_BF16 if family in name), None)


# ---------------------------------------------------------------- main


def machine(device: torch.device) -> str:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    cpu = platform.processor() or platform.machine()
    return f"{gpu}; {os.cpu_count()} CPUs ({cpu}); torch {torch.__version__}"


def table(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        fields = {k: v for k, v in row.items() if k != "part"}
        text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        lines.append(f"{row['part']:<9} {text}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["judge", "train", "generate"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="toy shapes of the same layouts, short texts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=5, help="responses per prompt")
    parser.add_argument("--judge-prompts", type=int, default=24)
    parser.add_argument("--batch-tokens", type=int, nargs="+", default=[4096, 16384, 65536])
    parser.add_argument("--pairs", type=int, default=4, help="pairs per train step (the recipe's per device)")
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--response-len", type=int, default=768, help="prompt + response: max_length 1024")
    parser.add_argument(
        "--logprob-chunks", type=int, nargs="*", default=[256], help="train.logprob_chunk values to add"
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=1024,
        help="train_packing: the recipes' max_length (prompts cut at half)",
    )
    parser.add_argument(
        "--packing-attention",
        nargs="+",
        default=["eager", "sdpa"],
        help="train_packing: attention implementations (flash_attention_2 where installed)",
    )
    parser.add_argument("--packing-chunk", type=int, default=1024, help="train_packing: train.logprob_chunk")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--gen-batch", type=int, default=64, help="prompts per transformers generate call")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="transformers generate")
    parser.add_argument("--vllm-prompts", type=int, default=64)
    parser.add_argument("--vllm-max-new-tokens", type=int, default=2048, help="the recipe's max_new_tokens")
    parser.add_argument("--json", help="also write the rows here")
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    shapes = TINY if args.tiny else SHAPES
    parts = {
        "generate": generate_part,
        "judge": judge_part,
        "train": train_part,
        "single_gpu": single_gpu_part,
        "train_packing": train_packing_part,
    }
    rows = []
    print(f"machine: {machine(device)}", flush=True)
    for name in args.parts:
        start = time.perf_counter()
        new = parts[name](shapes, args, device)
        print(table(new), flush=True)
        print(f"({name}: {time.perf_counter() - start:.0f} s in all)", flush=True)
        rows += new
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(device), "tiny": args.tiny, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
