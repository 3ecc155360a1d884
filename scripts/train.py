"""Train π_t from π_{t-1} on the iteration's pairs with the SPPO loss. Run by rule train:

    python scripts/train.py --model results/iter0/model --pairs results/iter1/reflogp/pairs.jsonl \
        --out results/iter1/model --settings '<train section, JSON>' \
        --model-config '<model section, JSON>' --seed 42

With train.num_processes > 1 the rule starts it under torchrun (one process per GPU or CPU slot).
"""

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from sppo import io, models, train

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", required=True)
parser.add_argument("--pairs", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--settings", required=True, type=json.loads)
parser.add_argument("--model-config", required=True, type=json.loads)
parser.add_argument("--seed", required=True, type=int)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument(
    "--local_rank", type=int, default=-1, help=argparse.SUPPRESS
)  # set by the deepspeed launcher
args = parser.parse_args()

# ---- logging and processes
rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
logging.basicConfig(
    level=logging.INFO, format=f"%(asctime)s [rank {rank}] %(name)s %(levelname)s %(message)s"
)
torch.set_num_threads(args.threads)
settings = args.settings

# ---- tokenizer and data
tokenizer = models.load_tokenizer(args.model, args.model_config)
rows = io.read_jsonl(
    args.pairs, required=["prompt", "chosen", "rejected", "ref_chosen_logp", "ref_rejected_logp"]
)
examples = train.examples(tokenizer, rows, settings)
max_steps, schedule_steps = train.schedule(len(examples), settings)
logging.info(
    "%d pairs, %d processes: %d optimizer steps of a %d-step schedule",
    len(rows),
    world,
    max_steps,
    schedule_steps,
)

# ---- model: the training arguments come first, so that ZeRO-3 partitions the weights as they load
out = Path(args.out)
partial = out.with_name(f".{out.name}.partial")
if rank == 0 and partial.exists():  # left by a killed run: start from an empty directory
    shutil.rmtree(partial)
training_args = train.arguments(settings, str(partial), world, max_steps, args.seed)
if settings["deepspeed"]:
    import deepspeed

    deepspeed.init_distributed()  # ZeRO-3 partitions while loading and must see every process
model = models.load_model(args.model, args.model_config, for_training=True)

# ---- training; π_t is written to a partial directory and renamed only once complete
trainer = train.SPPOTrainer(
    model=model,
    args=training_args,
    train_dataset=examples,
    data_collator=train.PairCollator(tokenizer.pad_token_id),
    eta=settings["eta"],
    schedule_steps=schedule_steps,
    callbacks=[train.StopOnNonFinite()],
)
try:
    trainer.train()
    train.check_finite(model)
except FloatingPointError:
    if rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
    raise  # no π_t is published
trainer.save_model(str(partial))  # every rank: ZeRO-3 gathers the weights
if trainer.is_world_process_zero():
    tokenizer.save_pretrained(partial)
    io.write_json(
        partial / "sppo_train.json",
        {
            "settings": settings,
            "seed": args.seed,
            "parent": args.model,
            "pairs": args.pairs,
            "processes": world,
        },
    )
    for leftover in ("training_args.bin",):
        (partial / leftover).unlink(missing_ok=True)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
