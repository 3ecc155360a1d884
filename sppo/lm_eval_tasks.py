"""lm-evaluation-harness tasks by name: their index, a check of the names, and the built tasks (which
reads their datasets). Shared by stage leaderboard (which evaluates π_t on them) and stage fetch
(which builds them once where the hub is reachable, so that the datasets' prepared copies are in
the datasets cache before the offline jobs read them).
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path


class UnknownTaskError(ValueError):
    """A task name lm-eval does not know; the message names it."""


@functools.cache
def task_manager(include_path: str | None):
    """lm-eval's task index (built-in tasks, plus the task YAMLs under ``include_path``), built once
    per process: indexing lm-eval's thousands of task files takes seconds."""
    from lm_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).is_dir():
        raise UnknownTaskError(f"leaderboard.include_path: {include_path!r} is not a directory")
    return TaskManager(include_path=include_path)


def check_tasks(names: list[str], manager) -> None:
    """Fail, naming them, when some task names are unknown to lm-eval (before any model is loaded)."""
    known = set(manager.all_tasks)
    unknown = [name for name in names if name not in known]
    if unknown:
        described = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=3)
            described.append(repr(name) + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise UnknownTaskError(f"leaderboard.tasks: unknown lm-eval task(s) {'; '.join(described)}")


def load_tasks(names: list[str], manager) -> list:
    """The named tasks and groups, built (their datasets fetched and read) before any model is loaded."""
    built = []
    for name in names:
        loaded = manager.load(name)
        if name in loaded["groups"]:
            built.append(loaded["groups"][name])
        elif name in loaded["tasks"]:
            built.append(loaded["tasks"][name])
        else:  # a tag stands for its tasks
            built.extend(loaded["tasks"].values())
    return built


def prepare(names: list[str], include_path: str | None) -> list[dict]:
    """Build the named tasks, which downloads their datasets and writes the prepared copies into the
    datasets cache (HF_DATASETS_CACHE, by default under HF_HOME), where an offline job finds them;
    the dataset each leaf task reads (task, dataset path, config name, revision)."""
    manager = task_manager(include_path)
    check_tasks(names, manager)
    found = {}
    for name in names:
        for task_name, task in manager.load(name)["tasks"].items():
            config = task.config
            revision = (config.dataset_kwargs or {}).get("revision")
            found[task_name] = {
                "task": task_name,
                "dataset": config.dataset_path,
                "name": config.dataset_name,
                "revision": revision,
            }
    return [found[name] for name in sorted(found)]
