"""Content hashes of artifacts: files streamed in chunks, directories as a hash over their files.

A file's entry is ``{"type": "file", "sha256", "size", "mtime_ns"}``. A directory's entry is
``{"type": "directory", "sha256", "files": {relative path: file entry}}`` where

    sha256(directory) = sha256( Σ over files sorted by relative path of  "<relpath>\\0<sha256>\\n" )

with POSIX relative paths. Every file below the directory counts, hidden ones included; symbolic
links are followed (their targets' contents are hashed); empty directories add nothing. The one
exception is ``.snakemake_timestamp``, the empty marker Snakemake puts into a ``directory()``
output *after* the job has finished (so the job's own record could never include it).

``size`` and ``mtime_ns`` let a job reuse the hash its producer recorded for an unchanged input
(same size and modification time) instead of reading a model's weights again; the audit never
does that and always reads every byte.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20
SNAKEMAKE_MARKER = ".snakemake_timestamp"


def file_sha256(*paths: str | os.PathLike) -> str:
    """sha256 of the bytes of ``paths`` read one after another in chunks of 1 MiB; for one file, its
    sha256 (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(file_hashes: dict[str, str]) -> str:
    """The directory hash over (relative path, file sha256) entries, sorted by path."""
    digest = hashlib.sha256()
    for rel in sorted(file_hashes):
        digest.update(f"{rel}\0{file_hashes[rel]}\n".encode())
    return digest.hexdigest()


def _file_entry(path: str, known: dict | None) -> dict:
    stat = os.stat(path)
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        sha = known["sha256"]
    else:
        sha = file_sha256(path)
    return {"type": "file", "sha256": sha, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def directory_files(path: str | os.PathLike) -> list[str]:
    """Every file below ``path`` (POSIX relative paths, sorted), Snakemake's marker excepted."""
    files = []
    for root, _dirs, names in os.walk(path, followlinks=True):
        for name in names:
            rel = Path(root, name).relative_to(path).as_posix()
            if rel != SNAKEMAKE_MARKER:
                files.append(rel)
    return sorted(files)


def entry(path: str | os.PathLike, known: dict | None = None) -> dict | None:
    """The hash entry of a file or directory; None if it does not exist.

    ``known``: a previously recorded entry of the same path whose hashes may be reused for files
    whose size and modification time are unchanged.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        known_files = (known or {}).get("files", {})
        files = {
            rel: _file_entry(os.path.join(path, rel), known_files.get(rel)) for rel in directory_files(path)
        }
        return {
            "type": "directory",
            "sha256": tree_sha256({rel: f["sha256"] for rel, f in files.items()}),
            "files": files,
        }
    if os.path.exists(path):
        return _file_entry(path, known if (known or {}).get("type") == "file" else None)
    return None


def differences(recorded: dict, current: dict | None) -> list[str]:
    """What differs between two entries of the same path, in words (empty when equal)."""
    if current is None:
        return ["missing"]
    if recorded["sha256"] == current["sha256"]:
        return []
    if recorded.get("type") == "directory" and current.get("type") == "directory":
        old, new = recorded["files"], current["files"]
        return (
            [
                f"{rel}: modified"
                for rel in sorted(old.keys() & new.keys())
                if old[rel]["sha256"] != new[rel]["sha256"]
            ]
            + [f"{rel}: missing" for rel in sorted(old.keys() - new.keys())]
            + [f"{rel}: added" for rel in sorted(new.keys() - old.keys())]
        )
    return [f"sha256 {recorded['sha256'][:12]}… recorded, {current['sha256'][:12]}… now"]
