"""AlpacaEval's own evaluation of π_t's outputs, its annotator on any OpenAI-compatible endpoint.

``alpaca_eval.main.evaluate`` compares π_t's outputs (AlpacaEval's model-outputs format:
instruction, output, generator) with reference outputs on the same instructions through an
annotator config, and reports the win rate and the length-controlled win rate. The leaderboard's
number is its GLM ``length_controlled_v1`` with the annotator ``weighted_alpaca_eval_gpt4_turbo``
(GPT-4 Turbo, log-prob weighted) against GPT-4 Turbo's outputs on the 805 AlpacaEval instructions;
that GLM reads a per-instruction difficulty of those 805 instructions (``df_gamed.csv`` of the hub
dataset tatsu-lab/alpaca_eval), so on any other instruction set only ``length_controlled_minimal``
(length difference and intercept alone) is defined. The instructions (by default that dataset's
``alpaca_eval_gpt4_baseline.json``) and the GLM's table are fetched with the run (sppo.fetch) and
read from the hub cache at the fetched commit (:func:`load_instructions`, :func:`glm_tables`).

:func:`write_local_annotator` writes an annotator config for an endpoint that returns no
log-probabilities (``transformers serve``; any local model): alpaca_eval's own ``chatgpt``
prompt (answer "Output (a)" or "Output (b)") with its text parser, widened to also read a bare
"a"/"b", and the endpoint's model name. Where the endpoint is reached: a client config file
(alpaca_eval's ``client_config_path``) holding only the base URL; the API key is read by the
OpenAI client from ``OPENAI_API_KEY``, set in this process from the variable the config names, so
it is written to no file.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from unittest import mock

import yaml

from sppo import hub

LOCAL = "local_text"  # the annotator name of write_local_annotator's config
# The hub dataset repository alpaca_eval reads its tables (and by default its instructions) from,
# and the files each GLM reads there (alpaca_eval.metrics.glm_winrate, with baseline=None as
# main.evaluate calls it): fetched with the run (sppo.fetch), read from the cache by :func:`evaluate`.
REPO = "tatsu-lab/alpaca_eval"
GLM_TABLES = {"length_controlled_v1": ["df_gamed.csv"], "length_controlled_minimal": []}
# "Output (a)" as alpaca_eval's chatgpt config reads it, or a bare letter (a small model's answer)
VERDICTS = {1: r"(?:^|\n)\W*(?:Output )?\(?[aA]\b", 2: r"(?:^|\n)\W*(?:Output )?\(?[bB]\b"}


def chatgpt_prompt() -> Path:
    """alpaca_eval's ``chatgpt`` annotator prompt (installed with the package)."""
    return configs_dir() / "chatgpt" / "basic_prompt.txt"


def write_client_config(directory: Path, base_url: str | None) -> Path:
    """alpaca_eval's client config for the endpoint: every model through ``base_url`` (None: the
    OpenAI client's default, api.openai.com), no key."""
    path = Path(directory).absolute() / "client_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"default": [{"base_url": base_url} if base_url else {}]}))
    return path


def write_local_annotator(
    directory: Path, *, base_url: str, model: str, max_tokens: int, concurrency: int
) -> Path:
    """A text-parsing annotator config (module docstring) in ``directory``; its path for
    :func:`evaluate`. ``max_tokens``: the verdict's budget; temperature 0, one pair per request."""
    directory = Path(directory).absolute()  # alpaca_eval reads a relative path below its own configs
    directory.mkdir(parents=True, exist_ok=True)
    client = write_client_config(directory, base_url)
    config = {
        LOCAL: {
            "prompt_template": str(chatgpt_prompt()),
            "fn_completions": "openai_completions",
            "completions_kwargs": {
                "model_name": model,
                "max_tokens": max_tokens,
                "temperature": 0,
                "requires_chatml": True,  # the prompt is ChatML: sent as chat messages
                "num_procs": concurrency,
                "client_config_path": str(client),
                "price_per_token": 0,  # a local endpoint; keeps alpaca_eval from guessing a price
            },
            "completion_parser_kwargs": {"outputs_to_match": VERDICTS},
            "batch_size": 1,
        }
    }
    path = directory / "configs.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def configs_dir() -> Path:
    """alpaca_eval's own annotator configs (installed with the package)."""
    import alpaca_eval

    return Path(alpaca_eval.__file__).parent / "evaluators_configs"


def generator_settings(name: str) -> dict:
    """The answer settings of alpaca_eval's model config ``name`` (its models_configs/<name>/configs.yaml,
    e.g. SPPO-Gemma-2-9B-It-PairRM, the config the authors' leaderboard entry was generated with):
    ``prompt_template`` (the text of its prompt file), ``temperature``, ``top_p``,
    ``max_new_tokens`` and ``stop_token_ids``, for :func:`sppo.sampling.respond`. Only configs that
    decode a local model with vLLM (``vllm_local_completions``) are reproduced, and of their
    sampling keys only those above (``do_sample: true`` and ``use_beam_search: false`` say no more);
    any other key is refused rather than left out. vLLM's defaults where a key is absent."""
    path = configs_dir().parent / "models_configs" / name / "configs.yaml"
    if not path.is_file():
        raise ValueError(f"alpaca_eval has no model config {name!r} (no {path})")
    (config,) = yaml.safe_load(path.read_text()).values()
    if config.get("fn_completions") != "vllm_local_completions":
        raise ValueError(f"{name!r} does not decode a local model with vLLM (vllm_local_completions)")
    kwargs = dict(config["completions_kwargs"])
    for key in ("model_name", "model_kwargs"):  # which model and how vLLM loads it: π_t answers
        kwargs.pop(key, None)
    kwargs.pop("batch_size", None)  # how many sequences vLLM runs at once: not what it samples
    if kwargs.pop("do_sample", True) is not True or kwargs.pop("use_beam_search", False) is not False:
        raise ValueError(f"{name!r} does not sample (do_sample / use_beam_search)")
    other = sorted(set(kwargs) - {"max_new_tokens", "temperature", "top_p", "stop_token_ids"})
    if other:
        raise ValueError(f"{name!r} sets {', '.join(other)}, which the answers here do not reproduce")
    return {
        "prompt_template": (path.parent.parent / config["prompt_template"]).read_text(),
        "temperature": float(kwargs.get("temperature", 1.0)),
        "top_p": float(kwargs.get("top_p", 1.0)),
        "max_new_tokens": int(kwargs["max_new_tokens"]),
        "stop_token_ids": [int(i) for i in kwargs.get("stop_token_ids", [])],
    }


def write_named_annotator(directory: Path, name: str, base_url: str | None) -> Path:
    """alpaca_eval's annotator config ``name`` (e.g. weighted_alpaca_eval_gpt4_turbo) copied to
    ``directory`` unchanged but for where its requests go: a client config with ``base_url``, and
    its prompt template's path made absolute. Its path, for :func:`evaluate`. A copy also keeps
    alpaca_eval's cache of verdicts, which it writes beside the config, out of the installed package."""
    source = configs_dir() / name / "configs.yaml"
    if not source.is_file():
        raise ValueError(f"alpaca_eval.annotator: alpaca_eval has no annotator config {name!r}")
    directory = Path(directory).absolute()
    client = write_client_config(directory, base_url)
    configs = yaml.safe_load(source.read_text())
    for config in configs.values():
        if config.get("fn_completions") != "openai_completions":
            raise ValueError(f"alpaca_eval.annotator: {name!r} does not use an OpenAI-compatible client")
        config["prompt_template"] = str(configs_dir() / config["prompt_template"])
        config.setdefault("completions_kwargs", {})["client_config_path"] = str(client)
    path = directory / "configs.yaml"
    path.write_text(yaml.safe_dump(configs, sort_keys=False))
    return path


@contextlib.contextmanager
def _api_key(api_key_env: str | None):
    """OPENAI_API_KEY for the OpenAI client alpaca_eval builds: the value of ``api_key_env``, or a
    placeholder for an endpoint without keys (the client refuses to start without one)."""
    if api_key_env is not None and api_key_env not in os.environ:
        raise RuntimeError(f"the API key variable {api_key_env} (alpaca_eval.api_key_env) is not set")
    key = os.environ[api_key_env] if api_key_env else "none"
    with mock.patch.dict(os.environ, {"OPENAI_API_KEY": key}):
        yield


def evaluate(
    model_outputs: list[dict],
    reference_outputs: list[dict],
    annotator: str | Path,
    *,
    output_dir: Path,
    glm: str,
    api_key_env: str | None = None,
) -> tuple[dict, list[dict]]:
    """alpaca_eval.main.evaluate of ``model_outputs`` against ``reference_outputs``, with annotator
    config ``annotator`` (an alpaca_eval config name or a configs.yaml) and LC GLM ``glm``; the
    leaderboard row as a dict (win_rate and length_controlled_winrate in percent, as alpaca_eval
    reports them) and the annotations."""
    from alpaca_eval import main

    if [r["instruction"] for r in model_outputs] != [r["instruction"] for r in reference_outputs]:
        raise ValueError("model and reference outputs are not on the same instructions, in order")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_api_key(api_key_env))
        stack.enter_context(glm_tables(glm, len(model_outputs)))
        leaderboard, annotations = main.evaluate(
            model_outputs=model_outputs,
            reference_outputs=reference_outputs,
            annotators_config=str(annotator),
            output_path=str(output_dir),
            precomputed_leaderboard=None,
            is_return_instead_of_print=True,
            is_cache_leaderboard=False,
            metric_kwargs={"glm_name": glm, "save_weights_dir": None, "is_warn_extreme_changes": False},
        )
    row = leaderboard.iloc[0].to_dict()
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}, annotations


@contextlib.contextmanager
def glm_tables(glm: str, n: int):
    """alpaca_eval's GLM ``glm`` reads its tables (:data:`GLM_TABLES`) from the hub cache at the
    commit the run's fetch recorded (sppo.hub.file: offline and not fetched, the error names them and
    the fetch), not from the network at the repository's main branch as its own hf_hub_download
    would. The minimal GLM reads no column of df_gamed.csv, but the library loads it: a stand-in of
    ``n`` rows."""
    from alpaca_eval.metrics import glm_winrate

    with contextlib.ExitStack() as stack:
        if GLM_TABLES[glm]:

            def download(repo_id, filename, repo_type="model", **_):  # alpaca_eval's cache_dir etc.
                return str(hub.file(repo_id, filename, repo_type))

        else:
            from sppo.evaluate import _local_gamed_table

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            table = str(_local_gamed_table(tmp, n))

            def download(*_, **__):
                return table

        stack.enter_context(mock.patch.object(glm_winrate, "hf_hub_download", download))
        yield


def load_instructions(source: str) -> list[dict]:
    """config alpaca_eval.instructions: a hub file reference (sppo.hub.FILE_URL_FORM), read from the
    hub cache at the commit the run's fetch recorded, or a local file; validated
    (:func:`read_instructions`)."""
    if hub.is_file_url(source):
        ref = hub.parse_file_url(source)
        return read_instructions(hub.file(ref["repo_id"], ref["filename"], ref["repo_type"], ref["revision"]))
    return read_instructions(source)


def read_instructions(path: str | Path) -> list[dict]:
    """AlpacaEval's instructions with the reference outputs (instruction, output, generator) from a
    JSON list or a JSON Lines file."""
    from sppo import io

    path = Path(path)
    rows = io.read_jsonl(path) if path.suffix == ".jsonl" else io.read_json(path)
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: no instructions (AlpacaEval's format is a list of them)")
    for i, row in enumerate(rows):
        missing = [k for k in ("instruction", "output", "generator") if k not in row]
        if missing:
            raise ValueError(f"{path}: instruction {i} lacks {', '.join(missing)} (AlpacaEval's format)")
    return rows


def prompts(instructions: list[dict]) -> list[dict]:
    """The instructions as the generation backend reads prompts: {id, prompt}, id the position."""
    return [{"id": str(i), "prompt": row["instruction"]} for i, row in enumerate(instructions)]


def metrics(row: dict, *, model: str, annotator: str, glm: str) -> dict:
    """What rule evaluate_alpaca publishes: alpaca_eval's leaderboard row, its win rates turned from
    percent to fractions like metrics.json's, with the annotator and the GLM named."""

    def fraction(key):  # None where alpaca_eval has no finite value (e.g. one instruction's error)
        value = float(row.get(key, math.nan))
        return value / 100.0 if math.isfinite(value) else None

    return {
        "model": model,
        "annotator": annotator,
        "glm": glm,
        "n_total": int(row["n_total"]),
        "win_rate": fraction("win_rate"),
        "standard_error": fraction("standard_error"),
        "lc_win_rate": fraction("length_controlled_winrate"),
        "avg_length": float(row["avg_length"]),
    }
