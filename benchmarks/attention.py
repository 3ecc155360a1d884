"""The cost of Gemma-2's attention soft-capping on CPU: eager attention (caps) against sdpa (does not).

    ./run python -m benchmarks.attention        # default shape, a few minutes on 2 cores
    ./run python -m benchmarks.attention --tiny # toy shape (tests/test_attention.py)

model.attn_implementation auto loads a model with ``attn_logit_softcapping`` (Gemma-2) with eager
attention (sppo.models), because transformers' default, sdpa, drops the cap. Eager materialises
the [batch, heads, length, length] scores and their capped and softmaxed copies; sdpa fuses them.
Two passes, each implementation in a process of its own (peak RSS is ru_maxrss, per process):

  reflogp   the reference log-probs of the batch (inference mode, sppo.logprobs.response_logps),
            as the reflogp stage computes them
  train     SPPO optimizer steps as benchmarks/train_memory.py runs them (RMSprop, clipping at 1,
            gradient checkpointing, float32)

on a Gemma-2-shaped model (Gemma-2-2B's layout, narrower and shallower: vocabulary 32000, hidden
512, 4 layers of 8 query / 4 key-value heads of 128, cap 50) and ``--pairs`` pairs of
``--prompt-len`` + ``--response-len`` random tokens. Times are medians of ``--steps`` after
``--warmup``; "RSS before" is after building the model (and, for train, the reference log-probs and
the optimizer). The summed log-probs show what the cap changes at this (random, small) init.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

from benchmarks.gpu import GEMMA2, model_config, sppo_steps
from benchmarks.train_memory import child_result, machine, rss_mib
from benchmarks.workloads import pair_batch
from sppo.logprobs import response_logps

SHAPE = GEMMA2 | dict(
    vocab_size=32000,
    hidden_size=512,
    intermediate_size=2048,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=128,
    query_pre_attn_scalar=128,
)
TINY = SHAPE | dict(vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=2, head_dim=16)
IMPLEMENTATIONS = ("eager", "sdpa")
PASSES = ("reflogp", "train")


def build(shape: dict, implementation: str, seed: int):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(
        model_config(shape), dtype=torch.float32, attn_implementation=implementation
    )


def run(shape: dict, implementation: str, kind: str, args) -> dict:
    """One pass with one implementation, in this process: median seconds, RSS before and at peak."""
    torch.set_num_threads(args.threads)
    batch = pair_batch(args.pairs, args.prompt_len, args.response_len, shape["vocab_size"], args.seed)
    model = build(shape, implementation, args.seed)
    assert model.config._attn_implementation == implementation
    if kind == "reflogp":
        model.eval()
        before, times = rss_mib(), []
        for _ in range(args.warmup + args.steps):
            start = time.perf_counter()
            with torch.inference_mode():
                logps = response_logps(model, batch, args.chunk)
            times.append(time.perf_counter() - start)
        logps_sum = float(logps.sum())
    else:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        out = sppo_steps(
            model.train(),
            batch,
            live_reference=False,
            chunk=args.chunk,
            steps=args.warmup + args.steps,
            bf16=False,
            ready=rss_mib,
        )
        before, times, logps_sum = out["ready"], out["times"], out["first_logps_sum"]
    return {
        "pass": kind,
        "attention": implementation,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": statistics.median(times[args.warmup :]),
        "rss_before_mib": before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "logps_sum": logps_sum,
    }


def spawn(implementation: str, kind: str, args) -> dict:
    """``run`` in a fresh interpreter (its own peak RSS)."""
    options = [
        f"--{key.replace('_', '-')}={getattr(args, key)}"
        for key in ("pairs", "prompt_len", "response_len", "chunk", "steps", "warmup", "threads", "seed")
    ]
    cmd = [sys.executable, __file__, "--child", f"--attention={implementation}", f"--pass={kind}", *options]
    cmd += ["--tiny"] if args.tiny else []
    return child_result(cmd, f"{kind} / {implementation}")


def table(rows: list[dict]) -> str:
    """One line per pass and implementation, with ratios to the pass's sdpa row."""
    lines = [
        f"{'pass':<8} {'attention':<9} {'params':>7} {'s/pass':>7} {'x time':>7} "
        f"{'RSS before':>10} {'peak RSS':>9} {'peak-before':>11} {'x':>6} {'sum log-probs':>14}"
    ]
    sdpa = {row["pass"]: row for row in rows if row["attention"] == "sdpa"}
    for row in rows:
        base = sdpa[row["pass"]]
        extra, base_extra = (r["peak_rss_mib"] - r["rss_before_mib"] for r in (row, base))
        lines.append(
            f"{row['pass']:<8} {row['attention']:<9} {row['parameters'] / 1e6:>6.1f}M {row['seconds']:>7.2f} "
            f"{row['seconds'] / base['seconds']:>6.2f}x {row['rss_before_mib']:>6.0f} MiB "
            f"{row['peak_rss_mib']:>5.0f} MiB {extra:>7.0f} MiB {extra / base_extra:>5.2f}x "
            f"{row['logps_sum']:>14.6g}"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy shape (seconds)")
    parser.add_argument("--pairs", type=int, default=2, help="pairs per batch (two sequences each)")
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--response-len", type=int, default=768)
    parser.add_argument("--chunk", type=int, default=1024, help="train.logprob_chunk")
    parser.add_argument("--steps", type=int, default=2, help="timed passes (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--attention", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--pass", dest="kind", choices=PASSES, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run(TINY if args.tiny else SHAPE, args.attention, args.kind, args)))
        return []
    started = time.perf_counter()
    print(f"machine: {machine()}", flush=True)
    print(
        f"workload: {args.pairs} pairs of {args.prompt_len} + {args.response_len} tokens, float32, "
        f"chunk {args.chunk}, median of {args.steps} after {args.warmup}, {args.threads} threads",
        flush=True,
    )
    rows = [spawn(impl, kind, args) for kind in PASSES for impl in IMPLEMENTATIONS]
    print(table(rows))
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "args": vars(args), "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
