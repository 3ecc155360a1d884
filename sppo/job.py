"""What every stage script does first and last.

First ``start``: send its output to the rule's log, set threads, log progress. Last ``finish``:
write the provenance record of the job's outputs (see sppo/provenance/), so a job that fails
before its last line leaves none.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from sppo import gpujob
from sppo.provenance.record import now

_started: str | None = None
_gpu_locks: list[int] = []


def start(log_path: str, threads: int = 1, gpus: int = 0) -> logging.Logger:
    """Redirect stdout and stderr (of Python and of native code) to ``log_path``; set torch's threads;
    for a job with ``gpus``, node-local caches and, off SLURM, GPUs of its own (sppo.gpujob)."""
    global _started, _gpu_locks
    _started = now()
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        force=True,
    )
    # torch reads OMP_NUM_THREADS when it is first imported; if it already is, tell it directly.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    _gpu_locks = gpujob.prepare(gpus)  # held until this process exits
    return logging.getLogger("sppo")


def progress(log: logging.Logger, what: str, done: int, total: int, unit: str, started: float) -> None:
    """Log a long loop's progress: ``what`` done/total ``unit``, the elapsed time since ``started``
    (time.monotonic()) and the rate, e.g. "ranked 32/64 prompts (1.5 s, 21.3 prompts/s)"."""
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed > 0 else float("inf")
    log.info("%s %d/%d %s (%.1f s, %.1f %s/s)", what, done, total, unit, elapsed, rate, unit)


def put_interpreter_on_path(deployment_methods) -> None:
    """Without conda environments, put the bin directory of the interpreter running Snakemake first on
    PATH, which every job inherits: shell rules then call the same `python` as `script:` rules, also
    when its venv is not activated. (Not a rule param: a moved venv must not rerun anything.)"""
    if any("conda" in str(method).lower() for method in deployment_methods):
        return
    bindir = os.path.dirname(sys.executable)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])


def finish(snakemake) -> None:
    """Write the provenance record of this job (its outputs, inputs, params, code and software)."""
    from sppo.provenance import record

    path = record.from_snakemake(snakemake, started=_started)
    logging.getLogger("sppo").info("provenance record: %s", path)
