"""One provenance record per job: what it made, from what, with which code, params and software.

Records live at ``results/provenance/<first output relative to results/>.json`` and are written
atomically by the job itself once its outputs are complete (``sppo.job.finish`` for script rules,
process 0 of the training processes for rule train: ``sppo.train.job_record``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sppo import hub
from sppo.io import dumps, write_json
from sppo.provenance import hashing
from sppo.provenance.code import code_version

FORMAT = "sppo-provenance/1"
RESULTS = Path("results")
RECORDS = RESULTS / "provenance"
# Distributions whose versions are recorded when installed (read from metadata; nothing is imported).
PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "accelerate",
    "peft",
    "deepspeed",
    "llm-blender",
    "vllm",
    "datasets",
    "alpaca-eval",
    "lm-eval",
    "numpy",
    "snakemake",
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def canonical_json(obj) -> str:
    """Canonical JSON (sppo.io.dumps); values JSON cannot hold (sets, paths, ...) as their repr."""
    return dumps(obj, default=repr)


def params_sha256(params: dict) -> str:
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()


def record_path(output: str | os.PathLike) -> Path:
    """Where the record of the job whose first output is ``output`` lives."""
    rel = Path(os.path.relpath(output, RESULTS))
    if rel.parts[0] == "..":  # an output outside results/ (the workflow has none): kept apart
        rel = Path("_outside_results", *Path(os.path.abspath(output)).parts[1:])
    return RECORDS / f"{rel}.json"


def load_all() -> dict[Path, dict]:
    """Every record of the run in the current directory, by record path."""
    records = {}
    for path in sorted(RECORDS.rglob("*.json")):
        with open(path, encoding="utf-8") as f:
            records[path] = json.load(f)
    return records


def producers(records: dict[Path, dict]) -> dict[str, dict]:
    """Output path → the record of the job that made it."""
    return {out: rec for rec in records.values() for out in rec["outputs"]}


def seeds(params, prefix: str = "") -> dict:
    """Every param (nested keys included) whose name mentions a seed, e.g. {"seed": 42}."""
    found = {}
    if isinstance(params, dict):
        for key, value in params.items():
            name = f"{prefix}{key}"
            if "seed" in str(key).lower():
                found[name] = value
            else:
                found.update(seeds(value, f"{name}."))
    return found


def software() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def gpus() -> list[str]:
    """GPU models: from torch when the job already imported it, else from nvidia-smi if present."""
    torch = sys.modules.get("torch")
    if torch is not None:
        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return []
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        if out.returncode == 0:
            return [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return []


def host() -> dict:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "gpus": gpus(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def hash_inputs(inputs: list[str]) -> dict[str, dict | None]:
    """Hash every input once, reusing its producer's recorded hash when size and mtime are unchanged."""
    made = producers(load_all()) if RECORDS.is_dir() else {}
    entries = {}
    for path in dict.fromkeys(os.path.normpath(p) for p in inputs):
        entries[path] = hashing.entry(path, known=made.get(path))
    return entries


def build(
    rule: str,
    inputs: list[str],
    outputs: list[str],
    params: dict,
    wildcards: dict | None = None,
    log: list[str] | None = None,
    threads: int | None = None,
    started: str | None = None,
) -> dict:
    """The record of a finished job (outputs must exist)."""
    out_entries = {}
    for path in outputs:
        out_entries[os.path.normpath(path)] = hashing.entry(path)
        if out_entries[os.path.normpath(path)] is None:
            raise FileNotFoundError(f"{path}: output missing, no provenance record written")
    return {
        "format": FORMAT,
        "rule": rule,
        # without the empty ones: the results prefix v of a single run (no variants) is ""
        "wildcards": {k: v for k, v in (wildcards or {}).items() if v != ""},
        "outputs": out_entries,
        "inputs": hash_inputs(inputs),
        "log": list(log or []),
        "params": json.loads(canonical_json(params)),
        "params_sha256": params_sha256(params),
        "seeds": json.loads(canonical_json(seeds(params))),
        "code": code_version(rule),
        "software": software(),
        "host": host(),
        "hub": hub.snapshots_read(),  # the commit of each hub model or dataset the job read
        "threads": threads,
        "started": started,
        "finished": now(),
    }


def write(record: dict) -> Path:
    path = record_path(next(iter(record["outputs"])))
    write_json(path, record)
    return path


def from_snakemake(snakemake, started: str | None) -> Path:
    """Record the job of a ``script:`` rule from its ``snakemake`` object."""
    params = dict(snakemake.params.items()) or {str(i): v for i, v in enumerate(snakemake.params)}
    return write(
        build(
            rule=snakemake.rule,
            inputs=list(snakemake.input),
            outputs=list(snakemake.output),
            params=params,
            wildcards=dict(snakemake.wildcards.items()),
            log=list(snakemake.log),
            threads=snakemake.threads,
            started=started,
        )
    )
