"""Hugging Face hub repositories as local folders: the standard hub cache first, the network last.

huggingface_hub keeps a repository at ``$HF_HUB_CACHE/models--<owner>--<name>/snapshots/<commit>/``
with ``refs/<revision>`` naming the commit (what ``hf download`` and ``from_pretrained`` write).
:func:`snapshot` returns that folder when the revision is cached, so a job on a node without
internet (or with ``HF_HUB_OFFLINE=1``) reads only local files; it downloads into the same cache
only when the revision is not there and the hub may be used.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

# What a model's loaders read: configs, tokenizers, weights (not TF/Flax/ONNX copies).
MODEL_FILES = ["*.json", "*.model", "*.txt", "*.safetensors", "*.bin", "*.py", "*.tiktoken"]
# The hub repositories this process read, (repo_id, revision, repo_type): the job's provenance
# record names the cached commit of each (:func:`snapshots_read`).
_READ: dict[tuple, None] = {}
# The fetch's record (results/fetch/revisions.json, absolute), set by the workflow for its jobs.
REVISIONS_ENV = "SPPO_HUB_REVISIONS"


# huggingface_hub's URL of a file in a dataset repository (HfFileSystem's form; a revision with "/"
# URL-encoded, as it writes one): hf://datasets/<owner>/<name>[@<revision>]/<path>
FILE_URL = re.compile(r"hf://datasets/(?P<repo_id>[^/@]+/[^/@]+)(?:@(?P<revision>[^/]+))?/(?P<filename>.+)")
FILE_URL_FORM = "hf://datasets/<owner>/<name>[@<revision>]/<file>"

FETCH_HINT = (
    "run the fetch first, on a machine that reaches the hub (the login node): "
    "`./run snakemake --cores 1 fetch --configfile <your config>` "
    "(docs/cluster.md: Before the first run on a cluster)"
)


def note_read(repo_id: str, revision: str | None = None, repo_type: str = "model") -> None:
    """Note that this process reads ``repo_id`` (for :func:`snapshots_read`)."""
    _READ[(repo_id, revision, repo_type)] = None


def pinned(repo_id: str, repo_type: str = "model", environ=os.environ) -> str | None:
    """The commit the run's fetch recorded for ``repo_id``, or None (not fetched, or no fetch record):
    jobs read that snapshot, even if a later download moved the cache's default branch."""
    path = environ.get(REVISIONS_ENV)
    if not path or not os.path.isfile(path):
        return None
    for item in json.loads(Path(path).read_text())["fetched"]:
        if (item["repo_id"], item["repo_type"]) == (repo_id, repo_type):
            return item["commit"]
    return None


def offline() -> bool:
    """Whether huggingface_hub is offline (HF_HUB_OFFLINE, as the workflow sets it for its jobs)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def cached_snapshot(repo_id: str, revision: str | None = None, repo_type: str = "model") -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision`` (default branch if None), or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(repo_id, revision=revision, repo_type=repo_type, local_files_only=True)
    except LocalEntryNotFoundError:
        return None
    return Path(path)


def is_file_url(value: str) -> bool:
    """Whether ``value`` means a file on the hub (hf://...) rather than a local path."""
    return value.startswith("hf://")


def parse_file_url(url: str) -> dict:
    """repo_id, repo_type, revision (None: the default branch) and filename of a hub file URL
    (:data:`FILE_URL_FORM`); ValueError if it is not one."""
    from sppo.io import is_hub_repo_id

    match = FILE_URL.fullmatch(url)
    if match is None or not is_hub_repo_id(match["repo_id"]) or match["filename"].endswith("/"):
        raise ValueError(f"{url!r} is not a hub file reference {FILE_URL_FORM}")
    revision = unquote(match["revision"]) if match["revision"] else None
    return {"repo_id": match["repo_id"], "repo_type": "dataset", "revision": revision} | {
        "filename": match["filename"]
    }


def file(repo_id: str, filename: str, repo_type: str = "dataset", revision: str | None = None) -> Path:
    """``filename`` of ``repo_id`` as a local file: from the hub cache at the commit the run's fetch
    recorded (else ``revision``, else the default branch); online and not cached, a download into the
    cache. Offline and not cached, the error names the file, the repository and the fetch."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    revision = pinned(repo_id, repo_type) or revision
    note_read(repo_id, revision, repo_type)
    try:
        return Path(hf_hub_download(repo_id, filename, repo_type=repo_type, revision=revision))
    except LocalEntryNotFoundError as e:  # offline (HF_HUB_OFFLINE=1 or no network)
        raise missing(repo_id, revision, repo_type, filename) from e


def missing(
    repo_id: str, revision: str | None = None, repo_type: str = "model", filename: str | None = None
) -> FileNotFoundError:
    """The error of a job that needs ``repo_id`` (its file ``filename``) while the hub is offline and
    it is not cached."""
    at = f" at {revision}" if revision else ""
    what = f"{filename!r} of " if filename else ""
    return FileNotFoundError(
        f"{what}{repo_type} {repo_id!r}{at} is not in the Hugging Face hub cache and the hub is offline "
        f"(HF_HUB_OFFLINE=1, as jobs run once a run is fetched): {FETCH_HINT}; the jobs must see "
        "the same HF_HOME / HF_HUB_CACHE as the fetch"
    )


def require_cached(repo_id: str, revision: str | None = None, repo_type: str = "model") -> None:
    """Raise :func:`missing` when the hub is offline and ``repo_id`` is not cached (a job's first check,
    so that it fails naming the item and the fetch rather than deep inside a loader). Notes the read."""
    note_read(repo_id, revision, repo_type)
    if offline() and cached_snapshot(repo_id, revision, repo_type) is None:
        raise missing(repo_id, revision, repo_type)


def snapshot(
    repo_id: str, revision: str | None = None, allow_patterns=MODEL_FILES, repo_type: str = "model"
) -> Path:
    """``repo_id`` at ``revision`` as a local folder: the cached snapshot, else a download into the
    hub cache. Offline with nothing cached, the error names the repository and the fetch."""
    note_read(repo_id, revision, repo_type)
    cached = cached_snapshot(repo_id, revision, repo_type)
    if cached is not None:
        return cached
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(
            repo_id, revision=revision, repo_type=repo_type, allow_patterns=allow_patterns
        )
    except LocalEntryNotFoundError as e:  # offline (HF_HUB_OFFLINE=1 or no network)
        raise missing(repo_id, revision, repo_type) from e
    return Path(path)


def snapshots_read() -> dict[str, str]:
    """``{repo_id (@revision): commit}`` of each hub repository this process read, as now cached (so
    also one a loader downloaded); a repository not in the cache is left out."""
    found = {}
    for repo_id, revision, repo_type in _READ:
        path = cached_snapshot(repo_id, revision, repo_type)
        if path is not None:
            name = repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"
            found[name + (f"@{revision}" if revision else "")] = path.name
    return found
