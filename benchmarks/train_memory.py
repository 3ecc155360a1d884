"""Training memory and step time on CPU: one model against a live reference, chunked against full logits.

    ./run python -m benchmarks.train_memory             # default shapes, ~5 minutes on 2 cores
    ./run python -m benchmarks.train_memory --tiny      # toy shapes (tests/test_train_memory.py)

One SPPO optimizer step as benchmarks/gpu.py's train part runs it (RMSprop, clipping at 1, gradient
checkpointing; bf16 autocast with --bf16, off by default because this CPU kind has no bfloat16
arithmetic) on ``--pairs`` pairs of ``--prompt-len`` + ``--response-len`` random tokens
(benchmarks/workloads.py), with the log-probs summed by sppo.logprobs.response_logps. Variants:

  one model   the workflow: π_{t−1}'s log-probs precomputed (here by the same model before the
              steps, in inference mode and the same pieces, as the reflogp stage would), one model
  live ref    the authors: a frozen copy of the model run on every step beside the policy
  full        the log-probs from the full [batch, length, vocabulary] logits (train.logprob_chunk 0)
  chunked     the LM head applied to --chunk response positions at a time (train.logprob_chunk)
  all K       train.responses all: every one of --k responses per prompt in the loss, not only the
              pair (K/2 times the sequences per step; its loss is another objective's)

Shapes: a Llama of 58.5M parameters (vocabulary 32000, hidden 512, 8 layers) and a large-vocabulary
one (Gemma-2's 256000 tokens, tied embeddings, hidden 128, 2 layers), where the logits dominate.
Every variant runs in a process of its own, because peak RSS (ru_maxrss) is per process; the
variants of a shape run one after the other, in the order given, in this invocation. Step time
is the median of ``--steps`` steps after ``--warmup`` steps; the first step's loss must be the same
in every pair variant of a shape (r = 0 at the start, whether the reference is precomputed or live).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from benchmarks.gpu import sppo_steps, training_model
from benchmarks.workloads import pair_batch

SHAPES = {
    "llama-58m": dict(
        model_type="llama",
        vocab_size=32000,
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
    ),
    "vocab-256k": dict(
        model_type="llama",
        vocab_size=256000,
        hidden_size=128,
        intermediate_size=344,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    ),
}
TINY = {
    "llama-58m": SHAPES["llama-58m"]
    | dict(vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=2),
    "vocab-256k": SHAPES["vocab-256k"] | dict(vocab_size=4000, hidden_size=32, intermediate_size=64),
}
# shape: the variants run on it, in order; the authors ran full logits, and the large vocabulary
# only compares the logits paths (--all-variants runs every combination on both)
VARIANTS = {
    "llama-58m": ["one model, full", "one model, chunked", "live ref, full", "one model, all K, chunked"],
    "vocab-256k": ["one model, full", "one model, chunked"],
}
ALL_VARIANTS = [
    "one model, full",
    "one model, chunked",
    "live ref, full",
    "live ref, chunked",
    "one model, all K, chunked",
]


def rss_mib() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_variant(shape: dict, variant: str, args) -> dict:
    """One variant's steps, in this process: median step time, first loss, RSS before and at peak."""
    torch.set_num_threads(args.threads)
    chunk = args.chunk if variant.endswith("chunked") else 0
    n = args.pairs if shape["vocab_size"] < 100_000 or args.tiny else args.vocab_pairs
    responses = args.k if "all K" in variant else 2
    batch = pair_batch(n, args.prompt_len, args.response_len, shape["vocab_size"], args.seed, responses)
    model = training_model(shape, torch.device("cpu"), args.seed)
    run = sppo_steps(
        model,
        batch,
        live_reference=variant.startswith("live"),
        chunk=chunk,
        steps=args.warmup + args.steps,
        bf16=args.bf16,
        ready=rss_mib,
    )
    return {
        "variant": variant,
        "pairs": n,
        "responses": responses,
        "parameters": sum(p.numel() for p in model.parameters()),
        "chunk": chunk,
        "step_s": statistics.median(run["times"][args.warmup :]),
        "first_loss": run["losses"][0],
        "first_logps_sum": run["first_logps_sum"],
        "first_max_abs_r": run["first_max_abs_r"],
        "rss_before_steps_mib": run["ready"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
    }


def child(args) -> None:
    shape = (TINY if args.tiny else SHAPES)[args.shape]
    print(json.dumps({"shape": args.shape, **run_variant(shape, args.variant, args)}))


def spawn(shape: str, variant: str, args) -> dict:
    """``variant`` of ``shape`` in a fresh interpreter (its own peak RSS)."""
    options = [
        f"--{key.replace('_', '-')}={getattr(args, key)}"
        for key in (
            "pairs",
            "vocab_pairs",
            "prompt_len",
            "response_len",
            "chunk",
            "k",
            "steps",
            "warmup",
            "threads",
            "seed",
        )
    ]
    flags = [flag for flag, on in (("--tiny", args.tiny), ("--bf16", args.bf16)) if on]
    cmd = [sys.executable, __file__, "--child", f"--shape={shape}", f"--variant={variant}", *options, *flags]
    return child_result(cmd, f"{shape} / {variant}")


def child_result(cmd: list[str], label: str) -> dict:
    """Run ``cmd`` (a benchmark's own ``--child`` pass, with the checkout importable) in a fresh
    interpreter, so that its peak RSS is its own; the JSON object it prints last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise RuntimeError(f"{label} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, python {platform.python_version()}"


def table(rows: list[dict]) -> str:
    """One line per variant, with ratios to the first variant of its shape ("one model, full")."""
    head = (
        f"{'shape':<11} {'variant':<25} {'params':>7} {'seqs':>5} {'s/step':>7} {'x time':>7} "
        f"{'RSS before':>10} {'peak RSS':>9} {'x peak':>7} {'first loss':>11}"
    )
    lines, base = [head], {}
    for row in rows:
        first = base.setdefault(row["shape"], row)
        lines.append(
            f"{row['shape']:<11} {row['variant']:<25} {row['parameters'] / 1e6:>6.1f}M "
            f"{row['pairs'] * row['responses']:>5} "
            f"{row['step_s']:>7.2f} "
            f"{row['step_s'] / first['step_s']:>6.2f}x {row['rss_before_steps_mib']:>6.0f} MiB "
            f"{row['peak_rss_mib']:>5.0f} MiB {row['peak_rss_mib'] / first['peak_rss_mib']:>6.2f}x "
            f"{row['first_loss']:>11.5g}"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy shapes (seconds)")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--pairs", type=int, default=4, help="pairs per optimizer step")
    parser.add_argument(
        "--vocab-pairs",
        type=int,
        default=2,
        help="pairs per step on the large vocabulary (4 × 512 tokens: 4.2 GB per float32 copy of the logits)",
    )
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--response-len", type=int, default=384)
    parser.add_argument("--chunk", type=int, default=1024, help="response positions per piece (chunked)")
    parser.add_argument("--k", type=int, default=5, help="responses per prompt of the all K variant")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (median)")
    parser.add_argument(
        "--all-variants", action="store_true", help="every pattern × logits path on every shape"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast, as on a GPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args.child:
        child(args)
        return []
    started = time.perf_counter()
    print(f"machine: {machine()}", flush=True)
    print(
        f"workload: pairs of {args.prompt_len} + {args.response_len} tokens ({args.pairs} per step, "
        f"{args.vocab_pairs} on the large vocabulary), {'bf16 autocast' if args.bf16 else 'float32'}, "
        f"gradient checkpointing, RMSprop, chunk {args.chunk}, median of {args.steps} steps after "
        f"{args.warmup}, {args.threads} threads",
        flush=True,
    )
    rows = [
        spawn(shape, variant, args)
        for shape in args.shapes
        for variant in (ALL_VARIANTS if args.all_variants else VARIANTS[shape])
    ]
    print(table(rows))
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "args": vars(args), "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
