"""Padding waste of the training micro-batches: token counts, not speed (runs anywhere, in seconds).

    ./run python -m benchmarks.padding                 # every recipe, 4096 prompts
    ./run python -m benchmarks.padding --recipes gemma-2-9b-it --prompts 512

For each recipe (config/recipes/NAME.yaml, its train section): ``--prompts`` prompts with the
responses it trains on (train.responses: pair → 2, all → generate.k), of realistic SPPO lengths
(benchmarks.workloads.REALISTIC: prompts 30–360 tokens, responses 80–2000, log-uniform), cut as
training cuts them (train.max_length, max_prompt_length, truncation), in micro-batches of
train.per_device_batch_size prompts. A padded micro-batch (sppo.logprobs.collate) computes
rows × its longest sequence positions; a packed one (train.packing, collate_packed) only the real
tokens. Printed per recipe:

    pad_fraction       pads / positions computed when padded = 1 − real / padded
    padded_per_real    positions computed when padded per real token (the packed run's is 1)
    response_fraction  response tokens (the ones the loss sums) / real tokens

Per-token costs differ: the linear layers' FLOPs scale with the positions, attention's with the
sum of squared lengths (padded: rows × longest², packed: Σ length²), so the speed gain is to be
measured (benchmarks.gpu, part train_packing), not read from these counts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from benchmarks.workloads import REALISTIC, varying_groups
from sppo.config import validate

RECIPES = Path(__file__).resolve().parents[1] / "config" / "recipes"


def recipe_config(name: str) -> dict:
    return validate(yaml.safe_load((RECIPES / f"{name}.yaml").read_text()))


def counts(groups, per_device: int) -> dict:
    """Token counts of ``groups`` (prompts, each a list of encoded responses) in micro-batches of
    ``per_device`` prompts, padded and packed; attention's Σ length² beside rows × longest²."""
    real = padded = responses = attention_real = attention_padded = 0
    for start in range(0, len(groups), per_device):
        sequences = [len(p.input_ids) for g in groups[start : start + per_device] for p in g]
        real += sum(sequences)
        padded += len(sequences) * max(sequences)
        attention_real += sum(n * n for n in sequences)
        attention_padded += len(sequences) * max(sequences) ** 2
        responses += sum(len(p.response_ids) for g in groups[start : start + per_device] for p in g)
    return {
        "real_tokens": real,
        "padded_positions": padded,
        "pad_fraction": 1 - real / padded,
        "padded_per_real": padded / real,
        "response_fraction": responses / real,
        "attention_padded_per_real": attention_padded / attention_real,
    }


def measure(name: str, prompts: int, seed: int) -> dict:
    config = recipe_config(name)
    train = config["train"]
    responses = 2 if train["responses"] == "pair" else config["generate"]["k"]
    groups = varying_groups(
        prompts,
        vocab_size=32000,
        seed=seed,
        max_length=train["max_length"],
        max_prompt_length=train["max_prompt_length"],
        truncation=train["truncation"],
        responses=responses,
    )
    settings = {
        key: train[key] for key in ("per_device_batch_size", "max_length", "max_prompt_length", "truncation")
    }
    tokens = counts(groups, train["per_device_batch_size"])
    return {"recipe": name, "responses": responses, **settings, **tokens}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    parser.add_argument("--recipes", nargs="+", default=names, choices=names)
    parser.add_argument("--prompts", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows here")
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    print(f"workload: {args.prompts} prompts, lengths {REALISTIC} (log-uniform), seed {args.seed}")
    rows = [measure(name, args.prompts, args.seed) for name in args.recipes]
    for row in rows:
        print(", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
