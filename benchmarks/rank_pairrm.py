"""Time PairRM ranking: llm-blender as the SPPO authors call it, against PairRMJudge, on the same inputs.

    ./run python -m benchmarks.rank_pairrm --threads 2       # both workloads, both checkpoints
    ./run python -m benchmarks.rank_pairrm --workloads short --sizes tiny --batch-tokens 2048 4096
    ./run python -m benchmarks.rank_pairrm --checkpoint DIR --device cuda --repeats 3

Workloads: ``short``, ``--prompts`` prompts of up to 30 words with K responses of up to 60 (any
words, punctuation); ``realistic``, ``--realistic-prompts`` prompts at SPPO lengths
(benchmarks/workloads.py: prompts of 30–360 tokens, responses of 80–2000, about half cut at 412).
Checkpoints (built in a temporary directory, PairRM's format): ``tiny`` (2 layers, hidden 32) and
``small`` (4 layers, hidden 256, 3.5M parameters), or ``--checkpoint``.

(a) ``Blender.rank(prompts, candidates, return_scores=True, batch_size=1)``: one prompt at a time,
    llm-blender's collator, K(K−1) forward passes of one sequence each;
(b) ``PairRMJudge.judge``: the same model inputs, tokenized once, all ordered pairs sorted by length
    and run in batches of at most ``--batch-size`` pairs and ``--batch-tokens`` padded tokens (one
    judge per value given).
Both run in this process with the same ``torch.set_num_threads``. Loading is not timed; each side
ranks two prompts first to warm up. Each repeat times (a) and every (b) once, alternating which goes
first; the table gives wall and CPU seconds (CPU seconds are steadier on a shared machine), the
speed-ups (a)/(b) and the largest |score (a) − score (b)|, then the median speed-up of each (b).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import numpy as np
import torch

from benchmarks.workloads import realistic_texts
from sppo.judges import pairrm_compat
from sppo.judges.pairrm import PairRMJudge
from sppo.judges.tiny import SMALL, TINY, build_tiny_pairrm

WORDS = "the a an and of to in is it that for on with as are be this you not or what how can".split()
WORDS += "model answer question river Paris 1984 quickly, because! however; (see above) [note] x=2".split()


def sample_text(rng: random.Random, max_words: int) -> str:
    """A text of 0..max_words words, the length log-uniform so that short and long texts both occur."""
    n = int(np.exp(rng.uniform(0, np.log(max_words + 1)))) - 1
    return " ".join(rng.choice(WORDS) for _ in range(n))


def sample_inputs(
    n_prompts: int, k: int, prompt_words: int, response_words: int, seed: int
) -> tuple[list[str], list[list[str]]]:
    """Deterministic prompts (up to ``prompt_words`` words) with K responses each (some of them empty)."""
    rng = random.Random(seed)
    prompts = [sample_text(rng, prompt_words) for _ in range(n_prompts)]
    candidates = [[sample_text(rng, response_words) for _ in range(k)] for _ in range(n_prompts)]
    return prompts, candidates


def timed(function, *args) -> tuple[np.ndarray, object]:
    """(wall, CPU) seconds of ``function(*args)``, and its result."""
    start = time.perf_counter(), time.process_time()
    result = function(*args)
    return np.array([time.perf_counter() - start[0], time.process_time() - start[1]]), result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["short", "realistic"])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], help="built checkpoints")
    parser.add_argument("--prompts", type=int, default=256, help="prompts of the short workload")
    parser.add_argument("--realistic-prompts", type=int, default=16, help="prompts of the realistic one")
    parser.add_argument("--k", type=int, default=5, help="responses per prompt")
    parser.add_argument("--prompt-words", type=int, default=30, help="short: longest prompt, in words")
    parser.add_argument("--response-words", type=int, default=60, help="short: longest response")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="PairRMJudge: most ordered pairs per batch"
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        nargs="+",
        default=[1024, 4096],
        help="PairRMJudge: most padded tokens per batch",
    )
    parser.add_argument("--checkpoint", help="a PairRM checkpoint instead of the built ones")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--dtype", default="float32", help="PairRMJudge only; Blender.rank uses llm-blender's"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled texts")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads of both sides (default: torch's choice)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side")
    return parser.parse_args(argv)


def workload(name: str, args) -> tuple[list[str], list[list[str]]]:
    if name == "short":
        return sample_inputs(args.prompts, args.k, args.prompt_words, args.response_words, args.seed)
    return realistic_texts(args.realistic_prompts, args.k, args.seed)


def compare(checkpoint: str, prompts, candidates, args) -> dict:
    """Time (a) and every (b) on the same inputs, ``args.repeats`` times, alternating the order."""
    from llm_blender import Blender, BlenderConfig

    blender = Blender(BlenderConfig(device=args.device, use_tqdm=False))
    blender.loadranker(checkpoint, device=args.device)
    judges = {
        tokens: PairRMJudge(
            checkpoint, args.device, args.dtype, batch_size=args.batch_size, batch_tokens=tokens
        )
        for tokens in args.batch_tokens
    }

    def rank_a(p, c):
        return blender.rank(p, c, return_scores=True, batch_size=1, disable_tqdm=True)

    runs = {"a": rank_a} | {tokens: judge.judge for tokens, judge in judges.items()}
    for run in runs.values():
        run(prompts[:2], candidates[:2])
    seconds: dict = {name: [] for name in runs}
    diffs: dict = {tokens: [] for tokens in judges}
    for repeat in range(args.repeats):
        order = list(runs) if repeat % 2 == 0 else list(runs)[::-1]
        results = {}
        for name in order:
            elapsed, results[name] = timed(runs[name], prompts, candidates)
            seconds[name].append(elapsed)
        for tokens in judges:
            diffs[tokens].append(np.abs(results["a"] - results[tokens].scores).max())
    return {"seconds": seconds, "diffs": diffs, "truncated": results[args.batch_tokens[0]].truncated}


def report(title: str, result: dict, args) -> None:
    seconds, diffs = result["seconds"], result["diffs"]
    print(f"\n== {title}")
    print("repeat  side                      wall s   CPU s   (a)/(b) wall   (a)/(b) CPU   max|diff|")
    for repeat in range(args.repeats):
        a = seconds["a"][repeat]
        print(f"{repeat:>6}  (a)                     {a[0]:>7.2f} {a[1]:>7.2f}")
        for tokens in diffs:
            b = seconds[tokens][repeat]
            ratio = a / b
            print(
                f"{repeat:>6}  (b) batch_tokens={tokens:<6} {b[0]:>7.2f} {b[1]:>7.2f} {ratio[0]:>13.2f}x"
                f" {ratio[1]:>12.2f}x   {diffs[tokens][repeat]:.1e}"
            )
    for tokens in diffs:
        ratios = np.array(seconds["a"]) / np.array(seconds[tokens])
        wall, cpu = np.median(ratios, axis=0)
        print(
            f"median speed-up, batch_tokens={tokens}: {wall:.2f}x wall, {cpu:.2f}x CPU "
            f"(max |score diff| {max(diffs[tokens]):.1e})"
        )
    print(f"truncated: {result['truncated']}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pairrm_compat.apply()  # before llm_blender is imported
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"(both sides), device {args.device}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"(a) Blender.rank(batch_size=1); (b) PairRMJudge(batch_size={args.batch_size}, dtype={args.dtype})"
    )
    sizes = {"tiny": TINY, "small": SMALL}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = (
            {args.checkpoint: args.checkpoint}
            if args.checkpoint
            else {
                size: str(build_tiny_pairrm(os.path.join(tmp, size), size=sizes[size])) for size in args.sizes
            }
        )
        for name in args.workloads:
            prompts, candidates = workload(name, args)
            for label, checkpoint in checkpoints.items():
                result = compare(checkpoint, prompts, candidates, args)
                report(
                    f"{name} workload ({len(prompts)} prompts x K={args.k}), checkpoint {label}", result, args
                )


if __name__ == "__main__":
    main()
