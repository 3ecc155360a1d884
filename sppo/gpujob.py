"""What a GPU job does before it loads a model: node-local caches and, off SLURM, its own GPUs.

Caches. vLLM, Triton and torch extensions (DeepSpeed's JIT ops) keep compiled kernels under
``$HOME`` by default, on a cluster the shared filesystem, where 8 shards would write them at once.
A GPU job sets ``VLLM_CACHE_ROOT``, ``TRITON_CACHE_DIR`` and ``TORCH_EXTENSIONS_DIR`` (each only
when unset) to folders under the config's ``node_cache_dir``, by default ``$TMPDIR`` (else /tmp)
as the node that runs the job sees it.

GPUs. Snakemake's resource ``gpu`` is only a counter: off SLURM nothing tells a job which GPUs are
its own. ``--resources gpu=N`` keeps the running jobs' GPUs at N or fewer, and each job takes that
many free slots of the run's pool (the GPUs of the machine, or the config's ``local_gpus``): one
lock file per GPU under ``.snakemake/gpu-slots/``, held with ``flock`` by the job's process, which
sets ``CUDA_VISIBLE_DEVICES`` to them. The kernel drops the locks when the process ends, whether it
succeeded, failed or was killed, so no slot is ever left taken. Under SLURM the workflow exports
no pool and a job keeps the GPUs (and ``CUDA_VISIBLE_DEVICES``) SLURM gave it.

Script jobs call :func:`prepare` (through ``sppo.job.start(..., gpus=N)``); shell jobs run their
command through ``python -m sppo.gpujob N -- COMMAND``, which prepares and then becomes COMMAND.
"""

from __future__ import annotations

import fcntl
import getpass
import logging
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

POOL_ENV = "SPPO_GPU_POOL"  # the run's GPUs, comma-separated (set only for a local run with GPUs)
SLOTS_ENV = "SPPO_GPU_SLOTS"  # the folder of their lock files
CACHE_ENV = "SPPO_NODE_CACHE"  # config node_cache_dir, expanded on the node
CACHE_VARS = {
    "VLLM_CACHE_ROOT": "vllm",
    "TRITON_CACHE_DIR": "triton",
    "TORCH_EXTENSIONS_DIR": "torch_extensions",
}
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per GPU the driver sees

log = logging.getLogger("sppo.gpujob")


def machine_gpus(configured: list | None, environ=os.environ, nvidia: Path = NVIDIA_GPUS) -> list[str]:
    """The GPUs local jobs share: ``configured`` (config local_gpus) when given, else those
    ``CUDA_VISIBLE_DEVICES`` lets Snakemake see, else every GPU the NVIDIA driver lists (0 … n−1)."""
    if configured is not None:
        return [str(d) for d in configured]
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    return [str(i) for i in range(len(list(nvidia.iterdir())))] if nvidia.is_dir() else []


def export_settings(config: dict, local: bool, slots_dir: str | Path, environ=os.environ) -> None:
    """What the workflow tells its jobs (through the environment they inherit): the cache root, and
    for a local run (not SLURM) with GPUs the pool and its lock folder."""
    environ[CACHE_ENV] = config["node_cache_dir"] or ""
    pool = machine_gpus(config["local_gpus"], environ) if local else []
    if pool:
        environ[POOL_ENV] = ",".join(pool)
        environ[SLOTS_ENV] = str(Path(slots_dir).absolute())
    else:
        environ.pop(POOL_ENV, None)
        environ.pop(SLOTS_ENV, None)


def node_local_caches(environ=os.environ) -> dict[str, str]:
    """Set each cache variable of :data:`CACHE_VARS` that is unset to ``<root>/sppo-<user>/<name>``
    (root: node_cache_dir with ``$VARS`` expanded here, else ``$TMPDIR``, else /tmp); return those set."""
    root = _expand(environ.get(CACHE_ENV) or "", environ) or environ.get("TMPDIR") or tempfile.gettempdir()
    base = Path(root) / f"sppo-{getpass.getuser()}"
    chosen = {var: str(base / name) for var, name in CACHE_VARS.items() if not environ.get(var)}
    environ.update(chosen)
    return chosen


def _expand(text: str, environ) -> str:
    """``text`` with ``$NAME`` and ``${NAME}`` replaced from ``environ`` (unknown names left as they are)."""
    pattern = r"\$(?:\{(\w+)\}|(\w+))"
    return re.sub(pattern, lambda m: environ.get(m.group(1) or m.group(2), m.group(0)), text)


def acquire(n: int, pool: list[str], slots_dir: str | Path, poll: float = 0.5) -> tuple[list[str], list[int]]:
    """Take ``n`` free GPUs of ``pool``: the devices and the open, locked file descriptors that hold
    them. Waits (polling) while fewer are free, as when a finished job's process has not yet exited."""
    if n > len(pool):
        raise ValueError(f"a job asks for {n} GPUs, but this machine's pool has {len(pool)}: {pool}")
    Path(slots_dir).mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        taken = []
        for device in pool:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", device)
            fd = os.open(Path(slots_dir) / f"gpu{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            taken.append((device, fd))
            if len(taken) == n:
                return [d for d, _ in taken], [fd for _, fd in taken]
        for _, fd in taken:
            os.close(fd)  # closing the last descriptor of a lock releases it
        if not waited:
            log.info("waiting for %d free GPUs of %s", n, ",".join(pool))
            waited = True
        time.sleep(poll * (1 + random.random()))  # jitter: two waiting jobs do not retry in step


def prepare(n: int, environ=os.environ) -> list[int]:
    """Set up a job that asks for ``n`` GPUs: node-local caches; for a local run with a pool, ``n``
    GPUs of its own in ``CUDA_VISIBLE_DEVICES``. Returns the lock descriptors: keep them open (the
    process) as long as the job runs."""
    if n <= 0:
        return []
    node_local_caches(environ)
    if not environ.get(POOL_ENV):
        return []  # SLURM (or no GPU here): CUDA_VISIBLE_DEVICES stays as it is
    devices, fds = acquire(n, environ[POOL_ENV].split(","), environ[SLOTS_ENV])
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    log.info("GPUs of this job: CUDA_VISIBLE_DEVICES=%s", environ["CUDA_VISIBLE_DEVICES"])
    return fds


def main(argv: list[str] | None = None) -> None:
    """``python -m sppo.gpujob N -- COMMAND ...``: prepare for N GPUs, then exec COMMAND, which
    inherits the locks (and holds them until it exits)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python -m sppo.gpujob N -- COMMAND [ARG ...]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for fd in prepare(int(argv[0])):
        os.set_inheritable(fd, True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    main()
