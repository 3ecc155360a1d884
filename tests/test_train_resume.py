"""An interrupted train job resumes from its last complete checkpoint (sppo.resume) and ends with the
π_t an uninterrupted job publishes; checkpoints made for other inputs are never resumed; under SLURM
the train job asks for the signal it saves a checkpoint on."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import CPU_MODEL_CONFIG, REPO, TINY_PAIRS, train_settings
from safetensors.torch import load_file
from test_recipes import FakeJob, sbatch_flags

from sppo import resume
from sppo.train import schedule

# One pair per optimizer step. RMSprop (the default) keeps a state per weight, and the Trainer
# shuffles the pairs in each epoch, so a resume that lost the optimizer state or the position in the
# data would train other steps.
SETTINGS = train_settings(
    global_batch_size=1, per_device_batch_size=1, max_length=64, max_prompt_length=32, save_minutes=0
)
STEPS = schedule(TINY_PAIRS, SETTINGS)[0]  # 8: 2 epochs of the offline default


def train(model, pairs, out, settings, env=None) -> subprocess.CompletedProcess:
    """scripts/train.py in one process, as rule train runs it."""
    args = ["--model", str(model), "--pairs", str(pairs), "--out", str(out), "--seed", "0"]
    args += ["--settings", json.dumps(settings), "--model-config", json.dumps(CPU_MODEL_CONFIG)]
    return subprocess.run(
        [sys.executable, "scripts/train.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_a_signalled_job_saves_stops_and_its_rerun_ends_as_an_uninterrupted_one(
    tiny_model_dir, tiny_pairs, tmp_path
):
    whole = train(tiny_model_dir, tiny_pairs, tmp_path / "whole" / "model", SETTINGS)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "run" / "model"
    checkpoints = resume.directory(out)
    settings = {**SETTINGS, "save_steps": 1}  # not part of the fingerprint: the rerun may resume
    # The process sends itself SIGURG after step 2 (what SLURM's --signal=URG@… would do).
    first = train(tiny_model_dir, tiny_pairs, out, settings, env={resume.TEST_SIGNAL_AT_STEP: "2"})
    log = first.stdout + first.stderr
    assert first.returncode != 0, log[-3000:]
    assert "received SIGURG" in log and f"stopped on SIGURG after step 2 of {STEPS}," in log, log[-3000:]
    assert not out.exists()  # nothing published
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", resume.FINGERPRINT]
    assert (checkpoints / "checkpoint-2" / resume.MARKER).is_file()
    # a checkpoint cut off while it was being written (no marker) must not be resumed
    (checkpoints / "checkpoint-3").mkdir()
    (checkpoints / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3}')

    second = train(tiny_model_dir, tiny_pairs, out, settings)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert f"resuming from {checkpoints / 'checkpoint-2'}" in log, log[-3000:]
    assert "checkpoint-3 (incomplete)" in log, log[-3000:]
    assert not checkpoints.exists()  # removed once π_t is published
    # Bit-identical: the same operations on the same values in one process on the same CPU; the
    # resumed run restores the weights, RMSprop's state, the schedule's step, the RNG states and
    # the position in the shuffled data exactly.
    expected, resumed = (
        load_file(tmp_path / "whole" / "model" / "model.safetensors"),
        load_file(out / "model.safetensors"),
    )
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    before = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(before[k], resumed[k]) for k in before)  # it did train


def fake_checkpoint(root, step, print_, complete=True):
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if complete:
        (path / resume.MARKER).write_text(json.dumps({**print_, "step": step}))
    return path


def test_a_checkpoint_for_other_inputs_or_settings_is_removed_not_resumed(
    tiny_model_dir, tiny_pairs, tmp_path, caplog
):
    def print_(pairs=tiny_pairs, **changes):
        return resume.fingerprint(
            str(pairs), str(tiny_model_dir), {**SETTINGS, **changes}, CPU_MODEL_CONFIG, 0, 1
        )

    base = print_()
    assert print_(save_steps=5, save_minutes=10, logging_steps=3) == base  # when to save is no input
    other_pairs = tmp_path / "pairs.jsonl"
    other_pairs.write_bytes(tiny_pairs.read_bytes() + b"\n")
    for other in (print_(learning_rate=1e-4), print_(pairs=other_pairs), print_(eta=2)):
        assert other["sha256"] != base["sha256"]

    root = tmp_path / ".model.checkpoints"
    root.mkdir()
    (root / resume.FINGERPRINT).write_text(json.dumps(base))
    fake_checkpoint(root, 2, base)
    fake_checkpoint(root, 3, base, complete=False)
    assert resume.latest(root, base) == root / "checkpoint-2"  # the newest complete one

    changed = print_(learning_rate=1e-4)
    assert resume.latest(root, changed) is None
    with caplog.at_level(logging.WARNING, logger="sppo.resume"):
        resume.tidy(root, changed, keep=None)
    assert "made for other inputs or settings" in caplog.text
    assert not root.exists()


def test_slurm_sends_the_train_job_its_checkpoint_signal_ahead_of_the_time_limit():
    """profiles/slurm's slurm_extra for train reaches the plugin's sbatch command line, and names a
    signal the trainer handles, early enough to finish a step and save."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    extra = eval(profile["set-resources"]["train"]["slurm_extra"])  # Snakemake evaluates it so
    flags = sbatch_flags(FakeJob(64, gpu=8, tasks_per_gpu=0, nodes=1, slurm_extra=extra))
    (signal,) = [w for w in flags.split() if w.startswith("--signal=")]
    name, seconds = signal.removeprefix("--signal=").split("@")
    # no "B:": to the job steps, where the trainer runs, not to the batch shell
    assert f"SIG{name}" == resume.SIGNALS[0].name and int(seconds) >= 300


@pytest.mark.parametrize("settings", [{"save_steps": -1}, {"save_minutes": -1}])
def test_negative_checkpoint_intervals_are_refused(settings):
    from sppo.config import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with pytest.raises(Exception, match="save_"):
        validate({**config, "train": {**config.get("train", {}), **settings}})
