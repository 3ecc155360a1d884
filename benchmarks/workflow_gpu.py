"""One iteration of a recipe through the workflow, every stage a Snakemake job, at its model's real
shape with random weights built on the machine (no hub): each stage's wall time and peak memory.

    ./run python -m benchmarks.workflow_gpu                      # one GPU: 1-GPU LoRA recipe, Gemma-2-9B
    ./run python -m benchmarks.workflow_gpu --tiny --device cpu  # the same code at toy shapes

What runs: ``iter1`` of ``--recipe`` (default config/recipes/gemma-2-9b-it-lora-1gpu.yaml, its
train/generate/judge settings) in a fresh copy of the workflow (benchmarks.pipeline), with these
changes, all written to the config it runs with (kept in the JSON):

- model.base: a random-weight model of the recipe's model shape (benchmarks.gpu.SHAPES, bfloat16),
  its tokenizer a byte-level BPE of 512 tokens trained on the bundled prompts (sppo.basemodel) and
  filled up with placeholder tokens to the shape's vocabulary (256k for Gemma-2), so every id the
  model samples decodes and encodes back to itself;
- the judges: a PairRM checkpoint of PairRM's shape (DeBERTa-v3-large, 24 layers, hidden 1024;
  weights N(0, 0.02)) built by sppo.judges.tiny;
- prompts: ``--prompts`` + ``--eval-prompts`` of the bundled prompts (short ones), iterations 1;
- generate.backend transformers unless vllm is installed, generate/evaluate.max_new_tokens
  ``--max-new-tokens`` (the recipe's 2048 would not fit the 10 minutes with random weights, which
  never stop early);
- on ``--device cpu``: float32, no bf16, no GPUs.

Per stage: the sum over its jobs of the wall seconds from the rules' ``benchmark:`` files, the
largest max_rss, and (with a GPU) the largest memory in use on the GPU while one of its jobs ran,
sampled with nvidia-smi every 0.5 s. Written to ``--json`` (benchmarks/measured/...).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import yaml

from benchmarks import gpu, pipeline
from sppo import io

SHAPE_OF = {"gemma-2-9b-it-lora-1gpu": "gemma-2-9b", "llama-3.2-1b-instruct-1gpu": "llama-3.2-1b"}


def build_policy(out: Path, shape: dict, prompts: list[str], device: str, seed: int) -> None:
    """A random-weight causal LM of ``shape``, its tokenizer of exactly its vocabulary (module docstring)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from sppo import basemodel

    tokenizer = basemodel.train_tokenizer(prompts, 512)
    tokenizer.add_tokens([f"<u{i}>" for i in range(len(tokenizer), shape["vocab_size"])])
    fields = dict(shape)
    ids = {k: getattr(tokenizer, k) for k in ("pad_token_id", "bos_token_id", "eos_token_id")}
    config = AutoConfig.for_model(fields.pop("model_type"), **fields, **ids)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model


def run_config(args, policy: Path, judge: Path, prompts: Path) -> dict:
    """The recipe with the changes of the module docstring."""
    path = pipeline.REPO / "config" / "recipes" / f"{args.recipe}.yaml"
    config = yaml.safe_load(path.read_text())
    cuda = args.device == "cuda"
    config["iterations"] = 1
    config["gpus"] = cuda
    config["threads"] = min(config.get("threads", 1), os.cpu_count() or 1)
    config["model"] = {**config["model"], "base": str(policy), "dtype": "bfloat16" if cuda else "float32"}
    config["prompts"] = {"source": "local", "path": str(prompts)}
    config["split"] = {"eval_size": args.eval_prompts}
    config["shards"] = 1
    backend = "vllm" if cuda and importlib.util.find_spec("vllm") else "transformers"
    config["generate"] = {**config["generate"], "backend": backend, "max_new_tokens": args.max_new_tokens}
    config["evaluate"] = {**config.get("evaluate", {}), "max_new_tokens": args.max_new_tokens}
    pairrm = {**config["judge"].get("pairrm", {}), "path": str(judge), "device": args.device}
    if not cuda:
        pairrm["dtype"] = "float32"
    config["judge"] = {**config["judge"], "train": "pairrm", "eval": "pairrm", "pairrm": pairrm}
    if not cuda:
        config["train"] = {**config["train"], "bf16": False}
    return config


class GpuSampler(threading.Thread):
    """The GPU memory in use (MiB, nvidia-smi) every ``period`` seconds, with the time."""

    def __init__(self, period: float = 0.5):
        super().__init__(daemon=True)
        self.period, self.samples, self.done = period, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
            )
            if out.returncode == 0:
                self.samples.append((time.time(), max(float(x) for x in out.stdout.split())))
            self.done.wait(self.period)


def stages(workdir: Path, samples: list[tuple[float, float]]) -> dict[str, dict]:
    """Per stage: jobs, wall seconds summed, largest max_rss (MiB), and the largest GPU memory
    sampled between a job's start (its benchmark file's time less its seconds) and its end."""
    out = {}
    for path in sorted((workdir / "logs" / "benchmarks").rglob("*.tsv")):
        stage = path.relative_to(workdir / "logs" / "benchmarks").parts[0]
        with open(path) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        seconds, end = float(row["s"]), path.stat().st_mtime
        during = [mib for t, mib in samples if end - seconds - 1 <= t <= end + 1]
        entry = out.setdefault(stage, {"jobs": 0, "seconds": 0.0, "max_rss_mib": 0.0, "gpu_memory_mib": None})
        entry["jobs"] += 1
        entry["seconds"] += seconds
        rss = row.get("max_rss", "NA")
        entry["max_rss_mib"] = max(entry["max_rss_mib"], float(rss) if rss not in ("NA", "-") else 0.0)
        if during:
            entry["gpu_memory_mib"] = max(entry["gpu_memory_mib"] or 0.0, max(during))
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="gemma-2-9b-it-lora-1gpu", choices=sorted(SHAPE_OF))
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="toy shapes of the same layouts")
    parser.add_argument("--prompts", type=int, default=32, help="training prompts of iter1")
    parser.add_argument("--eval-prompts", type=int, default=8, help="held-out prompts evaluate answers")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="generate and evaluate")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it")
    parser.add_argument("--json", type=Path, help="write the result here")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    shapes = gpu.TINY if args.tiny else gpu.SHAPES
    shape = shapes[SHAPE_OF[args.recipe]]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="sppo-workflow-gpu-"))
    workdir.mkdir(parents=True, exist_ok=True)
    pipeline.copy_workflow(workdir)
    texts = [r["prompt"] for r in io.read_jsonl(pipeline.REPO / "data" / "prompts.jsonl")]
    texts = texts[: args.prompts + args.eval_prompts]
    prompts = workdir / "bench" / "prompts.jsonl"
    prompts.parent.mkdir(parents=True, exist_ok=True)
    io.write_jsonl(prompts, [{"prompt": t} for t in texts])

    started = time.perf_counter()
    build_policy(workdir / "bench" / "policy", shape, texts, args.device, args.seed)
    from sppo.judges.tiny import build_tiny_pairrm

    build_tiny_pairrm(workdir / "bench" / "pairrm", seed=args.seed, std=0.02, size=shapes["deberta-v3-large"])
    built = time.perf_counter() - started
    config = run_config(args, workdir / "bench" / "policy", workdir / "bench" / "pairrm", prompts)
    config_path = workdir / "bench" / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    sampler = GpuSampler() if args.device == "cuda" and shutil.which("nvidia-smi") else None
    if sampler:
        sampler.start()
    started = time.perf_counter()
    command = [sys.executable, "-m", "snakemake", "iter1", "--configfile", str(config_path)]
    command += ["--cores", str(args.cores), "--quiet", "all"]
    if args.device == "cuda":
        command += ["--resources", "gpu=1"]
    proc = subprocess.run(command, cwd=workdir)
    wall = time.perf_counter() - started
    if sampler:
        sampler.done.set()
        sampler.join()
    if proc.returncode:
        raise SystemExit(f"snakemake iter1 failed ({proc.returncode}); the run is in {workdir}")
    result = {
        "machine": gpu.machine(torch.device(args.device)),
        "recipe": args.recipe,
        "shape": SHAPE_OF[args.recipe] + (" (toy)" if args.tiny else ""),
        "seconds_to_build_models": built,
        "iter1_wall_seconds": wall,
        "stages": stages(workdir, sampler.samples if sampler else []),
        "config": config,
    }
    for stage, entry in sorted(result["stages"].items(), key=lambda kv: -kv[1]["seconds"]):
        print(
            f"{stage:<18} "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items())
        )
    print(f"iter1: {wall:.1f} s wall; models built in {built:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(workdir)
    return result


if __name__ == "__main__":
    main()
