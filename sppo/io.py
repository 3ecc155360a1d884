"""Reading and writing the workflow's files: JSON Lines with precise errors, and atomic writes.

Every artifact is written to a temporary name beside its destination and renamed into place, so
a killed job never leaves a file (or model directory) that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path


class InputFileError(ValueError):
    """A malformed input file; the message names the file and, where it applies, the line."""


def is_hub_repo_id(value: str) -> bool:
    """Whether ``value`` is a valid Hugging Face hub repository id (``name`` or ``owner/name``), by
    huggingface_hub's own rule; absolute, ``./``, ``../``, ``~`` and deeper paths are not."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def read_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> list[dict]:
    """Read a JSON Lines file of objects; each must have the ``required`` keys. Blank lines are skipped."""
    return [row for _, row in numbered_jsonl(path, required)]


def numbered_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> Iterator[tuple[int, dict]]:
    """(line number in the file, object) for each non-blank line: blank lines count, so an error found
    later in a row can name the line an editor shows. Errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputFileError(
                    f"{path}:{lineno}: not valid UTF-8 ({err.reason} at byte {err.start})"
                ) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark some editors write
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputFileError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise InputFileError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            missing = [key for key in required if key not in row]
            if missing:
                raise InputFileError(f"{path}:{lineno}: missing column(s) {', '.join(map(repr, missing))}")
            yield lineno, row


def read_json(path: str | os.PathLike):
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputFileError(f"{path}: not valid JSON ({err})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def dumps(obj, default=None) -> str:
    """Canonical JSON text: the same object always gives the same bytes. ``default`` writes values
    JSON cannot hold (provenance records pass ``repr`` for paths and sets); NaN and ±inf are refused."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, allow_nan=False, default=default)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Atomically write ``rows`` as JSON Lines; returns the number of rows. A row holding NaN or ±inf
    (a judge's score, a log-probability) fails the write, naming the file, the row and its id, and
    nothing is published."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            try:
                line = dumps(row)
            except ValueError as err:
                where = f"row {n + 1}" + (f" (id {row['id']})" if "id" in row else "")
                raise ValueError(f"{path}: {where}: {err}; nothing was written") from None
            f.write(line + "\n")
            n += 1
    return n


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """Atomically write one JSON document (sorted keys, UTF-8)."""
    with atomic_path(path) as tmp:
        text = json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=indent, allow_nan=False)
        tmp.write_text(text + "\n", encoding="utf-8")


def _barrier() -> None:
    """Wait for every process of the torch.distributed group, when there is one."""
    torch = sys.modules.get("torch")  # imported by whoever started a group; never imported here
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, is_writer: bool = True) -> Iterator[Path]:
    """Yield the empty directory ``.NAME.partial`` beside ``path``; rename it to ``path`` only if the
    block succeeds (an existing ``path`` is replaced), and remove it if the block fails.

    A partial directory left by a killed run is removed first, so nothing stale is published.
    Several processes may write into it (under ZeRO-3 every process takes part in saving): each
    enters the block, and only the one with ``is_writer`` creates, clears, removes and renames the
    directory. Under torch.distributed every process waits for the others on entry (when the group
    exists already) and before the rename; a process that joins its group inside the block must
    not write before it has joined (joining waits for the writer).
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    if is_writer:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)  # left by a killed run
        partial.mkdir()
    _barrier()
    try:
        yield partial
        _barrier()  # every process has written its part
    except BaseException:
        if is_writer:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    if is_writer:
        _readable(partial)
        if path.exists():
            shutil.rmtree(path)
        os.replace(partial, path)


def _readable(directory: Path) -> None:
    """Give everything under ``directory`` the read (and, for directories, search) permission that the
    umask grants: some writers create private files (safetensors writes model.safetensors 0600),
    which colleagues on a shared cluster could not read."""
    mask = _umask()
    for entry in [directory, *directory.rglob("*")]:
        if entry.is_symlink():
            continue
        grant = (0o555 if entry.is_dir() else 0o444) & ~mask
        mode = entry.stat().st_mode
        if mode & grant != grant:
            os.chmod(entry, (mode & 0o7777) | grant)
