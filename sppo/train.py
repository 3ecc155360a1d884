"""Stage train: π_t from π_{t−1} with the SPPO loss (or a baseline's: train.loss, sppo/losses.py).

With r(y) = log πθ(y|x) − log π_ref(y|x) (sums over response tokens only; π_ref = π_{t−1} or π_0
by train.reference, its log-probs precomputed by the reflogp stage) and P̂ the estimated win rate
of a response, the default loss over the chosen y_w and rejected y_l is

    loss = mean over the batch of ½·[(r_w − η(P̂_w − ½))² + (r_l − η(P̂_l − ½))²]

and with train.responses all, the mean over the K samples of (r_i − η(P̂_i − ½))².

The global batch (in prompts) is fixed; per-process batch and gradient accumulation follow from
the number of processes. The learning-rate schedule may be longer than the training
(``schedule_epochs`` vs ``stop_epochs``), as in the released Mistral and Llama-3 models.

With train.lora enabled, π_{t−1}'s weights stay frozen and only LoRA adapters train; they are merged
into π_t's weights at the end, the adapter kept beside them (sppo.lora).

Rule train runs :func:`main` (scripts/train.py) under python, torchrun or srun … torchrun; every
process trains, π_t is published atomically (sppo.io.atomic_directory), and process 0 writes the
job's provenance record. Checkpoints (train.save_steps, train.save_minutes, SLURM's signal) let a
rerun of an interrupted job resume where it stopped (sppo.resume).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sppo import io, lora, losses, models, resume
from sppo.imports import without_sklearn
from sppo.job import progress
from sppo.logprobs import collate_groups, encode_rows, response_logps
from sppo.provenance import record

with without_sklearn():
    from transformers import Trainer, TrainerCallback, TrainingArguments

log = logging.getLogger(__name__)


def accumulation_steps(global_batch: int, per_device: int, world_size: int) -> int:
    """Gradient accumulation that keeps ``global_batch`` pairs per optimizer step."""
    if global_batch % (per_device * world_size):
        raise ValueError(
            f"global batch {global_batch} is not a multiple of {per_device} × {world_size} processes"
        )
    return global_batch // (per_device * world_size)


def schedule(n_pairs: int, settings: dict) -> tuple[int, int]:
    """(optimizer steps to run, steps of the learning-rate schedule)."""
    per_epoch = max(1, math.ceil(n_pairs / settings["global_batch_size"]))
    stop = settings["stop_epochs"] or settings["schedule_epochs"]
    return max(1, round(stop * per_epoch)), max(1, round(settings["schedule_epochs"] * per_epoch))


@dataclass
class GroupCollator:
    """Turns encoded examples into one batch (sppo.logprobs.collate_groups; with ``packed`` one row
    without padding, train.packing) with their targets."""

    pad_id: int
    packed: bool = False

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = collate_groups([e["sides"] for e in examples], self.pad_id, self.packed)
        for key in ("ref_logps", "win_rates", "pair_prob"):
            batch[key] = torch.tensor([e[key] for e in examples], dtype=torch.float64)
        return batch


class SPPOTrainer(Trainer):
    def __init__(
        self,
        *args,
        loss: str,
        eta: float,
        beta: float,
        ipo_normalize: bool,
        schedule_steps: int,
        logprob_chunk: int | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.loss, self.eta, self.beta, self.ipo_normalize = loss, eta, beta, ipo_normalize
        self.schedule_steps = schedule_steps
        self.logprob_chunk = logprob_chunk  # response positions per LM-head piece (sppo.logprobs)
        # The loss of a micro-batch is its mean over pairs, so the Trainer must divide it by the
        # accumulation steps (the authors' transformers 4.42 did). It does so only for models whose
        # forward takes no **kwargs; for the others it expects a loss summed over num_items_in_batch
        # and, across processes, multiplies by their number: gradients were 2× with accumulation 2.
        self.model_accepts_loss_kwargs = False
        self.sides = {}  # sums of the chosen's and rejected's r and targets since the last log

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        # The schedule runs over schedule_epochs even when training stops earlier (stop_epochs).
        return super().create_scheduler(self.schedule_steps, optimizer)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        n, m = inputs["tokens"].shape
        logps = response_logps(model, inputs, self.logprob_chunk).double().view(m, n).T
        loss = (
            losses.per_prompt(
                self.loss,
                logps - inputs["ref_logps"],
                eta=self.eta,
                beta=self.beta,
                win_rates=inputs["win_rates"],
                pair_probs=inputs["pair_prob"],
                tokens=inputs["tokens"],
                ipo_normalize=self.ipo_normalize,
            )
            .mean()
            .float()
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training step {self.state.global_step + 1}: the {self.loss} loss is {loss.item()}"
            )
        if model.training:
            self.record_sides(logps - inputs["ref_logps"], inputs["win_rates"])
        return (loss, {"logps": logps}) if return_outputs else loss

    def record_sides(self, rewards: torch.Tensor, win_rates: torch.Tensor) -> None:
        """Add this micro-batch's mean r and target η(P̂ − ½) of the chosen (highest P̂) and the
        rejected (lowest P̂) responses to what :meth:`log` reports next."""
        order = win_rates.argsort(dim=1, descending=True, stable=True)  # pair: chosen, rejected
        for side, column in (("w", order[:, :1]), ("l", order[:, -1:])):
            values = {
                f"r_{side}": rewards.detach().gather(1, column).mean().item(),
                f"target_{side}": (self.eta * (win_rates.gather(1, column) - 0.5)).mean().item(),
            }
            for key, value in values.items():
                self.sides[key] = self.sides.get(key, 0.0) + value
        self.sides["n"] = self.sides.get("n", 0) + 1

    def log(self, logs: dict, *args, **kwargs) -> None:
        """The Trainer's log (loss, grad_norm, learning_rate, ...) with the mean r_w, r_l and their
        targets over the micro-batches since the last log (this process's), and the step."""
        if "loss" in logs and self.sides:
            n = self.sides.pop("n")
            logs = {**logs, **{key: round(total / n, 6) for key, total in self.sides.items()}}
            logs["step"] = self.state.global_step
            self.sides = {}
        super().log(logs, *args, **kwargs)


class StopOnNonFinite(TrainerCallback):
    """Fails training at the first non-finite gradient norm the Trainer logs (each logging step)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        norm = (logs or {}).get("grad_norm")
        if norm is not None and not math.isfinite(norm):
            raise FloatingPointError(f"training step {state.global_step}: the gradient norm is {norm}")


class LogProgress(TrainerCallback):
    """Logs the optimizer steps done of all, the elapsed time and the rate at each logging step."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            progress(log, "trained", state.global_step, state.max_steps, "steps", self.started)


def local_values(param) -> torch.Tensor:
    """The values of ``param`` this process holds: under ZeRO-3 its partition (``ds_tensor``; the
    parameter's ``data`` is then an empty placeholder), otherwise the whole tensor."""
    return param.ds_tensor if hasattr(param, "ds_tensor") else param.data


def check_finite(model) -> None:
    """A FloatingPointError, on every process, naming the parameters that are not finite.

    Each process checks the values it holds (its ZeRO-3 partition, or the whole model); with several
    processes the count is summed over all of them, so that all fail together instead of the others
    waiting for the failed one in the collective save that follows.
    """
    bad = [name for name, param in model.named_parameters() if not torch.isfinite(local_values(param)).all()]
    count = len(bad)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        nccl = torch.distributed.get_backend() == "nccl"
        total = torch.tensor([count], device=torch.cuda.current_device() if nccl else "cpu")
        torch.distributed.all_reduce(total)
        count = int(total.item())
    if count:
        here = ", ".join(bad[:5]) + (" …" if len(bad) > 5 else "") if bad else "none"
        raise FloatingPointError(
            f"after training, {count} parameters (or ZeRO-3 partitions, over all processes) hold "
            f"non-finite values; of this process's: {here}"
        )


def examples(tokenizer, rows: list[dict], settings: dict) -> list[dict]:
    """The encoded responses of each row with what the loss needs: the reference log-probs, the win
    rates P̂ of those responses and P_wl (the chosen's probability of beating the rejected)."""
    responses = settings["responses"]
    groups, cut = encode_rows(
        tokenizer,
        rows,
        settings["max_length"],
        settings["max_prompt_length"],
        settings["truncation"],
        responses,
    )
    log.info("cut %d prompts and %d responses to fit the length limits", cut["prompts"], cut["responses"])
    out = []
    for sides, row in zip(groups, rows, strict=True):
        if len(row["ref_logps"]) != len(sides):
            raise ValueError(
                f"prompt {row['id']}: {len(row['ref_logps'])} reference log-probs for {len(sides)} responses "
                f"(train.responses {responses}); the reflogp stage ran with other settings"
            )
        rates = (
            row["win_rates"] if responses == "all" else [row["chosen_probs_win"], row["chosen_probs_lose"]]
        )
        out.append(
            {
                "sides": sides,
                "ref_logps": row["ref_logps"],
                "win_rates": rates,
                "pair_prob": row["chosen_probs"],
            }
        )
    return out


def arguments(settings: dict, out_dir: str, world_size: int, max_steps: int, seed: int) -> TrainingArguments:
    """The Trainer's arguments; ``out_dir`` receives its checkpoints (sppo.resume decides when)."""
    return TrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=settings["per_device_batch_size"],
        gradient_accumulation_steps=accumulation_steps(
            settings["global_batch_size"], settings["per_device_batch_size"], world_size
        ),
        learning_rate=settings["learning_rate"],
        optim={"rmsprop": "rmsprop", "adamw": "adamw_torch", "sgd": "sgd"}[settings["optimizer"]],
        lr_scheduler_type=settings["lr_scheduler"],
        warmup_steps=settings["warmup_ratio"],  # transformers 5: a float in [0, 1) is a ratio
        weight_decay=settings["weight_decay"],
        max_grad_norm=settings["max_grad_norm"],
        max_steps=max_steps,
        bf16=settings["bf16"],
        gradient_checkpointing=settings["gradient_checkpointing"],
        deepspeed=settings["deepspeed"],
        logging_steps=settings["logging_steps"],
        save_strategy="no",  # sppo.resume.Checkpointing asks for each save
        save_only_model=False,  # optimizer, scheduler and RNG states too: a resume continues exactly
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/train.py", description="Train π_t from π_{t−1} with the SPPO loss (rule train)."
    )
    parser.add_argument("--pairs", required=True, help="the pairs with π_{t−1}'s log-probs (reflogp)")
    parser.add_argument("--out", required=True, help="the directory π_t is published to")
    params = parser.add_argument_group("the rule's params, recorded as given (its script's path aside)")
    params.add_argument("--launcher", help="what started the processes: python, torchrun, srun … torchrun")
    params.add_argument("--model", required=True, help="π_{t−1}: a directory or a hub id")
    params.add_argument("--settings", required=True, type=json.loads, help="the train section (JSON)")
    params.add_argument("--model-config", required=True, type=json.loads, help="the model section (JSON)")
    params.add_argument("--seed", required=True, type=int)
    params.add_argument("--threads", type=int, default=1, help="torch threads per process")
    job = parser.add_argument_group("provenance: with --log-file, process 0 writes the job's record")
    job.add_argument("--log-file", help="the job's log")
    job.add_argument("--wildcard", action="append", default=[], metavar="NAME=VALUE")
    job.add_argument("--job-threads", type=int, help="the job's threads, all processes together")
    parser.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # deepspeed's launcher
    return parser.parse_args(argv)


def rule_params(args: argparse.Namespace) -> dict:
    """The params of rule train, as its command passed them."""
    return {
        "launcher": args.launcher,
        "model": args.model,
        "settings": args.settings,
        "model_config": args.model_config,
        "seed": args.seed,
        "threads": args.threads,
    }


def job_record(args: argparse.Namespace, started: str | None) -> dict:
    """The provenance record of the finished job; π_{t−1} is an input when it is a directory (as in
    rules/common.smk's policy_files), not when it is a hub id."""
    return record.build(
        rule="train",
        inputs=[args.pairs] + ([args.model] if os.path.isdir(args.model) else []),
        outputs=[args.out],
        params=rule_params(args),
        wildcards=dict(kv.split("=", 1) for kv in args.wildcard),
        log=[args.log_file],
        threads=args.job_threads,
        started=started,
    )


def save_extras(out_dir: Path, tokenizer, args: argparse.Namespace, world: int) -> None:
    """Beside the weights: the tokenizer and the settings used (sppo_train.json); no Trainer leftovers."""
    tokenizer.save_pretrained(out_dir)
    io.write_json(
        out_dir / "sppo_train.json",
        {
            "settings": args.settings,
            "seed": args.seed,
            "parent": args.model,
            "pairs": args.pairs,
            "processes": world,
        },
    )
    (out_dir / "training_args.bin").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    """Rule train's job: train π_t, publish it atomically, and (process 0, with --log-file) record it."""
    args, started = parse_args(argv), record.now()
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s [rank {rank}] %(name)s %(levelname)s %(message)s"
    )
    log.info("process %d of %d on %s", rank, world, socket.gethostname())  # where each rank ran
    torch.set_num_threads(args.threads)
    settings = args.settings

    # ---- tokenizer and data
    tokenizer = models.load_tokenizer(args.model, args.model_config)
    rows = io.read_jsonl(args.pairs, required=["id", "prompt", "chosen", "rejected", "ref_logps"])
    pairs = examples(tokenizer, rows, settings)
    max_steps, schedule_steps = schedule(len(pairs), settings)
    log.info(
        "%d pairs, %d processes: %d optimizer steps of a %d-step schedule",
        len(rows),
        world,
        max_steps,
        schedule_steps,
    )

    # ---- checkpoints of an earlier, interrupted run of this job (sppo.resume)
    checkpoints = resume.directory(args.out)
    print_ = resume.fingerprint(args.pairs, args.model, settings, args.model_config, args.seed, world)
    resume_from = resume.latest(checkpoints, print_)
    if resume_from:
        log.info("resuming from %s (its optimizer, scheduler, RNG states and data position)", resume_from)
    if rank == 0:
        resume.tidy(checkpoints, print_, keep=resume_from)

    # ---- model and training, in a partial directory that becomes π_t only once complete
    with (
        resume.kept_while_needed(checkpoints, is_writer=rank == 0),
        io.atomic_directory(args.out, is_writer=rank == 0) as partial,
    ):
        # The training arguments come first, so that ZeRO-3 partitions the weights as they load.
        training_args = arguments(settings, str(checkpoints), world, max_steps, args.seed)
        if settings["deepspeed"]:
            import deepspeed

            deepspeed.init_distributed()  # ZeRO-3 partitions while loading and must see every process
        model = models.load_model(args.model, args.model_config, for_training=True)
        if settings["lora"]["enabled"]:
            model = lora.wrap(model, settings["lora"], args.seed)
        saver = resume.Checkpointing(
            checkpoints, print_, settings["save_steps"], settings["save_minutes"], is_main=rank == 0
        )
        trainer = SPPOTrainer(
            model=model,
            args=training_args,
            train_dataset=pairs,
            data_collator=GroupCollator(tokenizer.pad_token_id, settings["packing"]),
            loss=settings["loss"],
            eta=settings["eta"],
            beta=settings["beta"],
            ipo_normalize=settings["ipo_normalize"],
            schedule_steps=schedule_steps,
            logprob_chunk=settings["logprob_chunk"],
            callbacks=[StopOnNonFinite(), LogProgress(), saver],
        )
        # a non-finite loss or gradient norm raises: nothing is published
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        if saver.signalled and trainer.state.global_step < max_steps:  # nothing is published
            raise resume.Interrupted(
                f"stopped on {saver.signalled} after step {trainer.state.global_step} of {max_steps}, "
                f"its checkpoint saved in {checkpoints}: a rerun of this job resumes from it"
            )
        check_finite(model)
        if settings["lora"]["enabled"]:
            if rank == 0:  # no ZeRO-3 with LoRA: every process holds the whole model
                lora.save_merged(model, partial)
        else:
            trainer.save_model(str(partial))  # every process: ZeRO-3 gathers the weights
        if rank == 0:
            save_extras(partial, tokenizer, args, world)
    if rank == 0 and args.log_file:
        log.info("provenance record: %s", record.write(job_record(args, started)))
