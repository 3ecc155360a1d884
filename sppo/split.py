"""Stage split: cut the prompts into one disjoint part per iteration plus a held-out evaluation set.

Empty and duplicate prompts are dropped (and counted). Every prompt gets a stable id, the first
16 hex digits of the sha256 of its text. The cut is deterministic given the seed.
"""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path

from sppo import hub
from sppo.io import InputFileError, is_hub_repo_id, numbered_jsonl

log = logging.getLogger(__name__)


def prompt_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def dedupe(prompts: list, seen: set[str] | None = None) -> tuple[list[str], dict[str, int]]:
    """Drop empty (or whitespace-only), non-string and repeated prompts, and those already in ``seen``."""
    seen = set() if seen is None else seen
    kept, counts = [], {"empty": 0, "duplicate": 0}
    for text in prompts:
        if not isinstance(text, str) or not text.strip():
            counts["empty"] += 1
        elif text in seen:
            counts["duplicate"] += 1
        else:
            seen.add(text)
            kept.append(text)
    return kept, counts


def read_local(path: str, column: str) -> list:
    """The ``column`` of every row of a JSON Lines prompt file (strings, or null for an empty prompt)."""
    prompts = []
    for lineno, row in numbered_jsonl(path, required=[column]):
        if row[column] is not None and not isinstance(row[column], str):
            raise InputFileError(f"{path}:{lineno}: column {column!r} is not a string")
        prompts.append(row[column])
    if not prompts:
        raise InputFileError(f"{path}: no prompts (the file has no rows)")
    return prompts


def _dropped(prompts: list, kept: list, counts: dict[str, int]) -> str:
    return (
        f"{len(kept)} usable of {len(prompts)}"
        f" ({counts['empty']} empty and {counts['duplicate']} duplicate dropped)"
    )


def split_local(
    prompts: list,
    iterations: int,
    eval_size: int,
    seed: int,
    max_per_iteration: int | None = None,
    source: str = "prompts",
) -> dict:
    """Shuffle the unique prompts with ``seed``; hold out ``eval_size``, cut the rest in equal parts.
    ``source`` (the file) names where the prompts came from in errors."""
    kept, counts = dedupe(prompts)
    if len(kept) < eval_size + iterations:
        raise InputFileError(
            f"{source}: too few usable prompts: {_dropped(prompts, kept, counts)};"
            f" need {eval_size} held out (split.eval_size) + one per iteration ({iterations})"
        )
    random.Random(seed).shuffle(kept)
    held_out, rest = kept[:eval_size], kept[eval_size:]
    parts = [rest[i::iterations] for i in range(iterations)]
    if max_per_iteration is not None:
        parts = [part[:max_per_iteration] for part in parts]
    return {"eval": held_out, "parts": parts, "dropped": counts}


def load_splits(dataset: str, splits: list[str], column: str) -> dict[str, list]:
    """The ``column`` of each named split of a hub dataset or local dataset directory."""
    import datasets

    source = dataset
    if not Path(dataset).exists() and is_hub_repo_id(dataset):
        # The fetched snapshot in the hub cache, else (online) the hub; offline and not cached: the
        # error names the dataset and the fetch. (datasets offline reads only its own cache.)
        pinned = hub.pinned(dataset, "dataset")  # the commit the run's fetch recorded, if any
        hub.require_cached(dataset, pinned, repo_type="dataset")
        source = str(hub.cached_snapshot(dataset, pinned, repo_type="dataset") or dataset)
    out = {}
    for name in splits:
        data = datasets.load_dataset(source, split=name)
        if column not in data.column_names:
            raise InputFileError(f"{dataset} split {name}: no column {column!r} (has {data.column_names})")
        out[name] = data[column]
    return out


def split_given(
    train: list[list],
    evaluation: list,
    eval_size: int,
    seed: int,
    max_per_iteration: int | None = None,
    names: tuple[list[str], str] | None = None,
) -> dict:
    """Parts given by the dataset (earlier parts win a repeated prompt); eval drawn from ``evaluation``
    after removing everything that occurs in a training part. ``names`` (each part's name, the
    evaluation prompts' name) name them in errors."""
    part_names, eval_name = names or ([f"part {i + 1}" for i in range(len(train))], "evaluation prompts")
    seen: set[str] = set()
    parts, counts = [], {"empty": 0, "duplicate": 0}
    for name, part in zip(part_names, train, strict=True):
        kept, c = dedupe(part, seen)
        if not kept:
            raise InputFileError(
                f"{name}: no usable prompts: {_dropped(part, kept, c)}, duplicates counting earlier parts"
            )
        counts = {key: counts[key] + c[key] for key in counts}
        parts.append(kept[:max_per_iteration] if max_per_iteration is not None else kept)
    candidates, c = dedupe(evaluation, set(seen))
    counts = {key: counts[key] + c[key] for key in counts}
    if len(candidates) < eval_size:
        raise InputFileError(
            f"{eval_name}: too few usable prompts: {_dropped(evaluation, candidates, c)},"
            f" duplicates counting the training parts; need {eval_size} (split.eval_size)"
        )
    random.Random(seed).shuffle(candidates)
    return {"eval": candidates[:eval_size], "parts": parts, "dropped": counts}


def rows(prompts: list[str]) -> list[dict]:
    return [{"id": prompt_id(p), "prompt": p} for p in prompts]


def run(prompt_config: dict, split_config: dict, iterations: int, seed: int) -> dict:
    """The split described by the config's ``prompts`` and ``split`` sections."""
    size, cap = split_config["eval_size"], split_config["max_per_iteration"]
    if prompt_config["source"] == "local":
        path = prompt_config["path"]
        result = split_local(read_local(path, prompt_config["column"]), iterations, size, seed, cap, path)
    else:
        names = prompt_config["train_splits"][:iterations]
        loaded = load_splits(
            prompt_config["dataset"], names + prompt_config["eval_splits"], prompt_config["column"]
        )
        evaluation = [p for name in prompt_config["eval_splits"] for p in loaded[name]]
        dataset = prompt_config["dataset"]
        labels = (
            [f"{dataset} split {n}" for n in names],
            f"{dataset} splits {', '.join(prompt_config['eval_splits'])}",
        )
        result = split_given([loaded[n] for n in names], evaluation, size, seed, cap, labels)
    log.info(
        "dropped %d empty and %d duplicate prompts",
        result["dropped"]["empty"],
        result["dropped"]["duplicate"],
    )
    log.info("parts: %s; held out: %d", [len(p) for p in result["parts"]], len(result["eval"]))
    return result
