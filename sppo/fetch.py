"""Stage fetch: download everything the configured run reads from the Hugging Face hub, once, before
any job; record the commit of each.

Run on a machine that reaches the hub (the login node: rule fetch is a local rule and uses no GPU).
What the run reads (:func:`plan`): the base policy π_0 (model.base, at model.revision), the prompt
dataset (prompts.dataset, source snorkel), each configured judge's checkpoint (judge.pairrm.path,
judge.reward_model.path) and PairRM's backbone, which only its config.json names (fetched after
it), with alpaca_eval.enabled AlpacaEval's instructions and the GLM's table (those files only), and
with leaderboard.enabled the lm-eval tasks' datasets. Local paths and the tiny model need
nothing. Everything goes into the standard hub cache (HF_HOME / HF_HUB_CACHE; the lm-eval datasets
into the datasets cache, HF_DATASETS_CACHE, by default HF_HOME/datasets, as prepared copies: offline,
`datasets` reads only those), where the jobs, which run with HF_HUB_OFFLINE=1 (config hub_offline),
find it; results/fetch/revisions.json records what was fetched and the commit of each.

A gated model (Gemma-2, Llama-3, Mistral) needs its licence accepted on its hub page and a token
(`hf auth login`, or HF_TOKEN): without them the fetch stops naming the model and what to do, before
any GPU job is queued.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from sppo.io import is_hub_repo_id

log = logging.getLogger(__name__)

LM_EVAL = "lm-eval tasks"  # a plan item's repo_type: lm-eval's tasks, whose datasets lm-eval fetches
# Formats other than PyTorch's (TensorFlow, Flax, ONNX, …), which no stage reads.
OTHER_FORMATS = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.gguf", "*.tflite", "*.pt", "onnx/*"]


def _is_hub(path: str | None) -> bool:
    return bool(path) and path != "tiny" and not Path(path).exists() and is_hub_repo_id(path)


def plan(config: dict) -> list[dict]:
    """The hub repositories a run of the validated ``config`` reads: dicts with repo_id, repo_type,
    revision and why (the config key). PairRM's backbone is added by :func:`fetch` once PairRM is here."""
    items = []
    base = config["model"]["base"]
    if _is_hub(base):
        items.append(_item(base, "model", config["model"]["revision"], "model.base"))
    prompts = config["prompts"]
    if prompts["source"] == "snorkel" and _is_hub(prompts["dataset"]):
        items.append(_item(prompts["dataset"], "dataset", None, "prompts.dataset"))
    judges = config["judge"]
    for name in dict.fromkeys([judges["train"], judges["eval"]]):
        path = (judges.get(name) or {}).get("path")
        if name in ("pairrm", "reward_model") and _is_hub(path):
            items.append(_item(path, "model", None, f"judge.{name}.path"))
    if config["alpaca_eval"]["enabled"]:
        items += alpaca_eval_items(config["alpaca_eval"])
    board = config["leaderboard"]
    if board["enabled"]:  # the tasks' datasets: lm-eval knows which (sppo.lm_eval_tasks.prepare)
        items.append(
            {"repo_type": LM_EVAL, "tasks": board["tasks"], "include_path": board["include_path"]}
            | {"repo_id": None, "revision": None, "why": "leaderboard.tasks"}
        )
    return items


def _item(repo_id: str, repo_type: str, revision: str | None, why: str) -> dict:
    return {"repo_id": repo_id, "repo_type": repo_type, "revision": revision, "why": why}


def alpaca_eval_items(settings: dict) -> list[dict]:
    """The hub files AlpacaEval's rules read (alpaca_eval.*): the instructions where they are a hub
    file, and the tables alpaca_eval's GLM downloads from its dataset repository, which then joins
    the instructions' item if they come from it (one commit for both). Only those files
    (allow_patterns): that repository also holds every leaderboard model's outputs."""
    from sppo import alpaca_eval, hub

    items = {}  # repo_id → item
    if hub.is_file_url(settings["instructions"]):
        ref = hub.parse_file_url(settings["instructions"])
        item = _item(ref["repo_id"], "dataset", ref["revision"], "alpaca_eval.instructions")
        items[ref["repo_id"]] = item | {"allow_patterns": [ref["filename"]]}
    tables = alpaca_eval.GLM_TABLES[settings["glm"]]
    if tables and alpaca_eval.REPO in items:
        item = items[alpaca_eval.REPO]
        item.update(why=f"{item['why']}, alpaca_eval.glm", allow_patterns=item["allow_patterns"] + tables)
    elif tables:
        item = _item(alpaca_eval.REPO, "dataset", None, "alpaca_eval.glm")
        items[alpaca_eval.REPO] = item | {"allow_patterns": list(tables)}
    return list(items.values())


def explain(item: dict, error: Exception) -> RuntimeError:
    """The fetch's error for ``item``: what is missing and what to do (licence, token, id)."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    name, page = item["repo_id"], f"https://huggingface.co/{_page(item)}"
    if isinstance(error, GatedRepoError):
        what = (
            f"{name} ({item['why']}) is gated: accept its licence at {page} with your account, then "
            "log in on this machine (`hf auth login`, or export HF_TOKEN) and fetch again"
        )
    elif isinstance(error, RevisionNotFoundError):
        what = f"{name} ({item['why']}) has no revision {item['revision']!r}"
    elif isinstance(error, RepositoryNotFoundError):
        what = (
            f"{name} ({item['why']}) was not found on the hub: check the id; a private or gated "
            f"repository also needs a token (`hf auth login`, or HF_TOKEN) and access at {page}"
        )
    else:
        what = f"{name} ({item['why']}) could not be fetched"
    return RuntimeError(f"fetch: {what}: {type(error).__name__}: {error}")


def _page(item: dict) -> str:
    return f"datasets/{item['repo_id']}" if item["repo_type"] == "dataset" else item["repo_id"]


def fetch_one(item: dict) -> Path:
    """Download ``item`` into the hub cache (or find it there); its snapshot folder, whose name is the
    commit. A model's weights are fetched in one format: safetensors where the repository has them.
    An item with allow_patterns gets only the files they match."""
    from huggingface_hub import list_repo_files, snapshot_download

    ignore = list(OTHER_FORMATS)
    try:
        if item["repo_type"] == "model":
            files = list_repo_files(item["repo_id"], revision=item["revision"])
            if any(f.endswith(".safetensors") for f in files):
                ignore += ["*.bin", "*.bin.index.json"]
        path = snapshot_download(
            item["repo_id"],
            revision=item["revision"],
            repo_type=item["repo_type"],
            allow_patterns=item.get("allow_patterns"),
            ignore_patterns=ignore,
        )
    except Exception as e:
        raise explain(item, e) from e
    return Path(path)


def pairrm_backbone(checkpoint: Path, why: str) -> dict | None:
    """The hub repository of the backbone a PairRM checkpoint's config.json names (model_name), if any."""
    name = json.loads((checkpoint / "config.json").read_text())["model_name"]
    return _item(name, "model", None, f"{why} → backbone") if _is_hub(name) else None


def fetch(items: list[dict], download=None) -> list[dict]:
    """Fetch each of ``items`` (and PairRM's backbone after PairRM); the records, each item with its
    snapshot ``commit``. ``download``: item → snapshot folder (default :func:`fetch_one`)."""
    download = download or fetch_one
    done, queue = [], list(items)
    while queue:
        item = queue.pop(0)
        if item["repo_type"] == LM_EVAL:
            done.append({**item, "datasets": prepare_tasks(item)})
            continue
        path = download(item)
        what = (item["repo_type"], item["repo_id"], item["why"], path.name, path)
        log.info("%s %s (%s): commit %s in %s", *what)
        done.append({**item, "commit": path.name})
        if item["why"] == "judge.pairrm.path":
            backbone = pairrm_backbone(path, item["why"])
            if backbone is not None:
                queue.insert(0, backbone)
    return done


def prepare_tasks(item: dict) -> list[dict]:
    """Build the lm-eval tasks of ``item`` (their datasets into the datasets cache); what they read."""
    from sppo import lm_eval_tasks

    try:
        datasets = lm_eval_tasks.prepare(item["tasks"], item["include_path"])
    except lm_eval_tasks.UnknownTaskError:
        raise
    except Exception as e:  # a gated dataset (GPQA), the hub out of reach, ...
        raise RuntimeError(
            f"fetch: the datasets of lm-eval tasks {', '.join(item['tasks'])} ({item['why']}) could not be"
            f" prepared: {type(e).__name__}: {e}. A gated dataset (Idavidrein/gpqa in the leaderboard group)"
            " needs its terms accepted on its hub page and a token (`hf auth login`, or HF_TOKEN)"
        ) from e
    for entry in datasets:
        log.info("lm-eval task %s: dataset %s (%s) prepared", entry["task"], entry["dataset"], entry["name"])
    return datasets


def export_offline(items: list[dict], hub_offline: bool, environ=os.environ) -> bool:
    """Set HF_HUB_OFFLINE=1 for the jobs (the environment they inherit) when the run reads the hub
    (``items``) and config hub_offline is on, unless the user set HF_HUB_OFFLINE; whether it did."""
    if not (items and hub_offline) or "HF_HUB_OFFLINE" in environ:
        return False
    environ["HF_HUB_OFFLINE"] = "1"
    return True
