"""Train checkpoints that let an interrupted train job resume (rule train, sppo.train).

A train job saves the Trainer's full state (weights, optimizer, scheduler, RNG states, step) every
``train.save_steps`` optimizer steps and/or every ``train.save_minutes`` minutes, and when it is
sent one of :data:`SIGNALS` (SLURM's ``--signal`` before the time limit, profiles/slurm): then it
saves at the next step boundary and exits non-zero, so that Snakemake retries the job (or SLURM
requeues it). The checkpoints live in ``.NAME.checkpoints`` beside π_t's directory ``NAME``: outside
the rule's declared output, which Snakemake removes before a job runs and after it fails.

A rerun resumes from the newest *complete* checkpoint: one that carries :data:`MARKER`, written by
process 0 after every process has finished its part of the save. A checkpoint made for other
inputs or settings (another :func:`fingerprint`) is removed, never resumed. Once π_t is published
the directory is removed (:func:`kept_while_needed`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from sppo import io
from sppo.imports import without_sklearn
from sppo.provenance import hashing

with without_sklearn():
    from transformers import TrainerCallback

log = logging.getLogger(__name__)

# SIGURG is what profiles/slurm asks SLURM to send (--signal=URG@…) to every process of the job's
# steps: its default action is to be ignored, so the others (Snakemake, bash, torchrun) survive it,
# where SIGUSR1 would kill them. SIGUSR1 is handled too, for a signal sent to the trainer by hand.
SIGNALS = (signal.SIGURG, signal.SIGUSR1)
MARKER = "sppo-complete.json"  # in a checkpoint-N directory: every process finished saving it
FINGERPRINT = "fingerprint.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Keys that change when or how often checkpoints are made, not what is trained.
NOT_FINGERPRINTED = ("save_steps", "save_minutes", "logging_steps")
TEST_SIGNAL_AT_STEP = "SPPO_TEST_SIGNAL_AT_STEP"  # tests: the process signals itself after step N


def directory(out: str | os.PathLike) -> Path:
    """Where the checkpoints of the job publishing ``out`` live: ``.NAME.checkpoints`` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.checkpoints")


def _parent_state(model: str) -> object:
    """π_{t−1} as it stands: for a directory each file's name, size and modification time (hashing
    18 GB of weights at every start would cost minutes); for a hub id the id itself."""
    if not os.path.isdir(model):
        return model
    stats = {rel: os.stat(os.path.join(model, rel)) for rel in hashing.directory_files(model)}
    return [(rel, stat.st_size, stat.st_mtime_ns) for rel, stat in stats.items()]


def fingerprint(pairs: str, model: str, settings: dict, model_config: dict, seed: int, world: int) -> dict:
    """What a checkpoint was made for: the pairs' content hash, π_{t−1} (:func:`_parent_state`), the
    train settings (the checkpoint frequency aside), the model section, the seed and the number of
    processes (a DeepSpeed checkpoint is partitioned per process)."""
    settings = {k: v for k, v in settings.items() if k not in NOT_FINGERPRINTED}
    parts = {
        "pairs_sha256": hashing.file_sha256(pairs),
        "parent": model,
        "parent_state": _parent_state(model),
        "settings": settings,
        "model_config": model_config,
        "seed": seed,
        "processes": world,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "pairs_sha256": parts["pairs_sha256"]}


def complete_checkpoints(root: Path) -> list[Path]:
    """The checkpoint-N directories under ``root`` that carry :data:`MARKER`, oldest step first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if (p / MARKER).is_file()]


def latest(root: Path, print_: dict) -> Path | None:
    """The newest complete checkpoint under ``root`` made for ``print_``, or None (read only)."""
    try:
        recorded = io.read_json(root / FINGERPRINT)
    except (OSError, ValueError):
        return None
    if recorded.get("sha256") != print_["sha256"]:
        return None
    done = complete_checkpoints(root)
    return done[-1] if done else None


def tidy(root: Path, print_: dict, keep: Path | None) -> None:
    """Process 0, before training: remove what must not be resumed, saying why; ``keep`` is the
    checkpoint being resumed. A directory left with no checkpoint is removed."""
    if not root.is_dir():
        return
    recorded = root / FINGERPRINT
    if recorded.is_file() and io.read_json(recorded).get("sha256") != print_["sha256"]:
        log.warning(
            "removing the checkpoints in %s: they were made for other inputs or settings "
            "(pairs, π_{t−1}, train settings, model section, seed or process count differ)",
            root,
        )
        shutil.rmtree(root)
        return
    for path in root.iterdir():
        if CHECKPOINT.match(path.name) and path != keep:
            log.info("removing %s (%s)", path, "older" if (path / MARKER).exists() else "incomplete")
            shutil.rmtree(path, ignore_errors=True)
    if keep is None:
        shutil.rmtree(root)


@contextlib.contextmanager
def kept_while_needed(root: Path, *, is_writer: bool) -> Iterator[None]:
    """Around training and publishing π_t: afterwards (the writer process) remove ``root``, unless
    the block failed and ``root`` holds a complete checkpoint that a rerun can resume from."""
    try:
        yield
    except BaseException:
        if is_writer and root.is_dir() and not complete_checkpoints(root):
            shutil.rmtree(root, ignore_errors=True)  # the Trainer made it; nothing to resume in it
        raise
    if is_writer and root.is_dir():
        saved = complete_checkpoints(root)
        shutil.rmtree(root)
        if saved:
            log.info("removed the checkpoints in %s (π_t is published)", root)


class Interrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; a rerun resumes from it."""


def _any_process(*flags: bool) -> list[bool]:
    """Whether each of ``flags`` is true on any process, in one all-reduce (all processes must
    decide to save together: a save is collective under DeepSpeed)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(flags)
    nccl = torch.distributed.get_backend() == "nccl"
    value = torch.tensor([int(f) for f in flags], device=torch.cuda.current_device() if nccl else "cpu")
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return [bool(v) for v in value.tolist()]


class Checkpointing(TrainerCallback):
    """Saves checkpoints into ``root`` at the step boundaries that ``save_steps`` (0: never),
    ``save_minutes`` (0: never) or a received signal (:data:`SIGNALS`) call for; marks each complete
    once every process saved it and removes the one before. After a signal training stops with the
    state saved, and :attr:`signalled` names the signal."""

    def __init__(self, root: Path, print_: dict, save_steps: int, save_minutes: float, is_main: bool):
        self.root, self.print_, self.is_main = root, print_, is_main
        self.save_steps, self.save_seconds = save_steps, 60 * save_minutes
        self.signalled: str | None = None
        self.last_save = time.monotonic()
        self.signal_at = int(os.environ.get(TEST_SIGNAL_AT_STEP, 0))
        for sig in SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        # Only a flag: saving here, in the middle of a step, would save a half-updated state.
        self.signalled = signal.Signals(signum).name
        log.warning(
            "received %s: saving a checkpoint at the end of this optimizer step, then stopping",
            self.signalled,
        )

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_save = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.signal_at and state.global_step == self.signal_at:
            os.kill(os.getpid(), SIGNALS[0])
        due = bool(self.save_steps) and state.global_step % self.save_steps == 0
        due |= bool(self.save_seconds) and time.monotonic() - self.last_save >= self.save_seconds
        stop, due = _any_process(self.signalled is not None, due)
        if stop and self.signalled is None:
            self.signalled = "a signal to another process"
        if (due or stop) and state.global_step < state.max_steps:
            control.should_save = True  # the final step needs none: π_t itself is saved next
        if stop:
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        io._barrier()  # every process has written its part (its RNG state, its DeepSpeed partition)
        self.last_save = time.monotonic()
        if not self.is_main:
            return
        saved = self.root / f"checkpoint-{state.global_step}"
        io.write_json(self.root / FINGERPRINT, self.print_)  # what the checkpoints are made for
        io.write_json(saved / MARKER, {**self.print_, "step": state.global_step})
        for older in complete_checkpoints(self.root)[:-1] + [
            p for p in self.root.iterdir() if CHECKPOINT.match(p.name) and not (p / MARKER).exists()
        ]:
            shutil.rmtree(older, ignore_errors=True)
        log.info("checkpoint of step %d of %d complete: %s", state.global_step, state.max_steps, saved)
