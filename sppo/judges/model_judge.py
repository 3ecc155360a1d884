"""What the model judges (PairRM, reward models) share: settings, input checks and checkpoint files."""

from __future__ import annotations

import json
from pathlib import Path

from sppo.io import is_hub_repo_id


def check_batch_size(batch_size: int, name: str = "batch_size") -> int:
    """``batch_size`` when it is a positive integer, else a ValueError naming the setting ``name``."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{name} must be a positive integer, got {batch_size!r}")
    return batch_size


def count_candidates(prompts: list[str], candidates: list[list[str]]) -> int:
    """K, the number of candidates per prompt, after checking that every prompt has the same K."""
    if len(prompts) != len(candidates):
        raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
    sizes = {len(row) for row in candidates}
    if len(sizes) > 1:
        raise ValueError(f"every prompt needs the same number of candidates, got {sorted(sizes)}")
    return sizes.pop() if sizes else 0


def is_hub_id(path: str) -> bool:
    """Whether ``path`` names a Hugging Face hub repository (sppo.io.is_hub_repo_id) and not a local path."""
    return not Path(path).exists() and is_hub_repo_id(path)


def hub_error(path: str, error: Exception) -> FileNotFoundError:
    """The error for a hub id that could not be loaded."""
    return FileNotFoundError(
        f"judge checkpoint {path!r}: no such directory, and loading it as a Hugging Face hub id failed "
        f"(offline with no local copy?): {error}"
    )


def check_checkpoint_dir(path: str | Path, weight_names: tuple[str, ...]) -> Path:
    """``path`` as a directory holding ``config.json`` and one of ``weight_names``, or an error naming it."""
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"judge checkpoint {str(path)!r}: no such directory")
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"judge checkpoint {str(path)!r}: no config.json")
    weights_file(directory, weight_names)
    return directory


def weights_file(directory: Path, weight_names: tuple[str, ...]) -> Path:
    """The first of ``weight_names`` present in ``directory`` (so the order says which one a loader reads)."""
    for name in weight_names:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(
        f"judge checkpoint {str(directory)!r}: no weights (looked for {', '.join(weight_names)})"
    )


def weight_files(weights: Path) -> list[Path]:
    """The weight files: ``weights`` itself, or the shards of a shard index (``*.index.json``)."""
    if not weights.name.endswith(".index.json"):
        return [weights]
    shards = sorted(set(json.loads(weights.read_text())["weight_map"].values()))
    return [weights.parent / shard for shard in shards]
