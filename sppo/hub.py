"""Hugging Face hub repositories as local folders: the standard hub cache first, the network last.

huggingface_hub keeps a repository at ``$HF_HUB_CACHE/models--<owner>--<name>/snapshots/<commit>/``
with ``refs/<revision>`` naming the commit (what ``hf download`` and ``from_pretrained`` write).
:func:`snapshot` returns that folder when the revision is cached, so a job on a node without
internet (or with ``HF_HUB_OFFLINE=1``) reads only local files; it downloads into the same cache
only when the revision is not there and the hub may be used.
"""

from __future__ import annotations

from pathlib import Path

# What a model's loaders read: configs, tokenizers, weights (not TF/Flax/ONNX copies).
MODEL_FILES = ["*.json", "*.model", "*.txt", "*.safetensors", "*.bin", "*.py", "*.tiktoken"]


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision`` (default branch if None), or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def snapshot(repo_id: str, revision: str | None = None, allow_patterns=MODEL_FILES) -> Path:
    """``repo_id`` at ``revision`` as a local folder: the cached snapshot, else a download into the
    hub cache. Offline with nothing cached, the error names the repository."""
    cached = cached_snapshot(repo_id, revision)
    if cached is not None:
        return cached
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns))
    except LocalEntryNotFoundError as e:  # offline (HF_HUB_OFFLINE=1 or no network)
        raise FileNotFoundError(
            f"{repo_id!r}{f' at {revision}' if revision else ''} is not in the Hugging Face hub cache "
            f"and the hub cannot be reached: download it first (on a machine with internet), e.g. "
            f"`hf download {repo_id}`, into the cache this job reads (HF_HOME / HF_HUB_CACHE): {e}"
        ) from e
