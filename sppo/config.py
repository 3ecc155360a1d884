"""The workflow's one config: defaults, schema validation and the checks a schema cannot express.

``load`` is called by the Snakefile before any job is scheduled, so a bad config fails at once
with a message that names the offending key.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from sppo import hub
from sppo.io import is_hub_repo_id


class ConfigError(ValueError):
    """An invalid config; the message starts with the dotted key at fault."""


def schema() -> dict:
    text = resources.files("sppo").joinpath("schemas/config.schema.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _fill_defaults(node: dict, sub_schema: dict) -> None:
    """Insert every default the schema declares, recursing into objects (also freshly defaulted ones)."""
    for key, prop in sub_schema.get("properties", {}).items():
        if key not in node and "default" in prop:
            node[key] = copy.deepcopy(prop["default"])
        if isinstance(node.get(key), dict) and prop.get("type") == "object":
            _fill_defaults(node[key], prop)


# A float literal as YAML 1.2 and Python read it but YAML 1.1 (PyYAML) does not: 1e-6, 5E7, +2.5e-3.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

# Keys that name a file or directory on this machine (or a hub id): "~" in them is the home directory.
PATH_KEYS = (
    "model.base",
    "prompts.path",
    "prompts.dataset",
    "judge.pairrm.path",
    "judge.reward_model.path",
    "train.deepspeed",
    "leaderboard.include_path",
)


def _types(prop: dict) -> set:
    kind = prop.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _coerce_numbers(node: dict, sub_schema: dict) -> None:
    """Turn a string written as a number (``1e-6``, which PyYAML reads as a string: YAML 1.1 wants
    ``1.0e-6``) into that number, where the schema wants a number and no string. An integer key takes
    it only when it is a whole number (``5e3`` → 5000); anything else is left for the schema to
    refuse. Likewise true/false and null: ``snakemake --config 'generate={k: 3}'`` reads the braces
    with YAML's BaseLoader, which makes every value a string."""
    for key, prop in sub_schema.get("properties", {}).items():
        value = node.get(key)
        types = _types(prop)
        if isinstance(value, dict) and "object" in types:
            _coerce_numbers(value, prop)
        elif isinstance(value, str) and "string" not in types:
            node[key] = _scalar(value.strip(), types, value)


def _scalar(text: str, types: set, value: str):
    """``text`` as the number, boolean or null the schema's ``types`` want, else ``value`` unchanged."""
    if _FLOAT_TEXT.fullmatch(text):
        number = float(text)
        if "integer" in types and number.is_integer():
            return int(number)
        if "number" in types:
            return number
    if "boolean" in types and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "null" in types and text in ("null", "~"):
        return None
    return value


def _expand_home(config: dict, keys=PATH_KEYS) -> None:
    """``~`` and ``~user`` at the start of a path key → the home directory (os.path.expanduser)."""
    for dotted in keys:
        *sections, last = dotted.split(".")
        node = config
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(last), str) and node[last].startswith("~"):
            node[last] = os.path.expanduser(node[last])


def _nest_dotted(config: dict, full_schema: dict) -> dict:
    """Top-level keys written with dots (``snakemake --config generate.k=3`` gives {"generate.k": 3})
    → the nested key they name, merged into its section. A dotted key whose sections are not in the
    schema is refused naming it."""
    out = {key: value for key, value in config.items() if not (isinstance(key, str) and "." in key)}
    for dotted in sorted(set(config) - set(out)):
        *sections, last = dotted.split(".")
        node, props = out, full_schema
        for i, section in enumerate(sections):
            prop = props.get("properties", {}).get(section)
            if prop is None or "object" not in _types(prop) or "properties" not in prop:
                where = ".".join(sections[: i + 1])
                known = ", ".join(k for k, p in full_schema["properties"].items() if "properties" in p)
                raise ConfigError(
                    f"config key {dotted}: {where} is not a section of the config (sections: {known})"
                )
            if not isinstance(node.get(section), dict):
                node[section] = {}
            node, props = node[section], prop
        node[last] = config[dotted]
    return out


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _describe(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        where = _key(err.absolute_path)
        keys = ", ".join(f"{where}.{k}" if err.absolute_path else k for k in extra)
        return f"config key {keys}: unknown key (allowed: {', '.join(sorted(err.schema['properties']))})"
    return f"config key {_key(err.absolute_path)}: {err.message}"


def validate(config: dict) -> dict:
    """Return a validated copy of ``config`` with every default filled in and its keys sorted at every
    level; raise ConfigError otherwise.

    Sorted because rules take config sections as params, and Snakemake compares params by their
    repr, in which a dict's keys stand in insertion order: the order of the keys in the config
    file (and where the defaults went in) would otherwise rerun jobs whose values did not change.
    """
    full_schema = schema()
    config = _nest_dotted(copy.deepcopy(dict(config)), full_schema)
    _fill_defaults(config, full_schema)
    _coerce_numbers(config, full_schema)
    _expand_home(config)
    _check_finite(config, [])
    validator = jsonschema.Draft202012Validator(full_schema)
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(e.absolute_path))
    )
    if errors:
        raise ConfigError("\n".join(_describe(e) for e in errors))
    _check_semantics(config)
    config["variants"] = _variants(config, full_schema["properties"]["train"])
    return _sorted(config)


def _variants(config: dict, train_schema: dict) -> dict:
    """Each variant's whole train section: the train section with the variant's keys over it (those
    of a nested section such as lora key by key), validated as the train section is (errors name
    variants.NAME.KEY)."""
    validator = jsonschema.Draft202012Validator(train_schema)
    out = {}
    for name, overrides in config["variants"].items():
        # Refused only where it differs from train: a validated config (whose variants are whole train
        # sections) validates to itself, as the audit and the run card re-validate the run's config.
        fixed = sorted(
            k for k in {"num_processes", "nodes"} & set(overrides or {}) if overrides[k] != config["train"][k]
        )
        if fixed:
            _fail(f"variants.{name}.{fixed[0]}", "sizes the train jobs of every variant: set it in train")
        merged = copy.deepcopy(config["train"])
        for key, value in (overrides or {}).items():  # a section (train.lora) merges key by key
            merged[key] = {**merged[key], **value} if isinstance(merged.get(key), dict) else value
        _coerce_numbers(merged, train_schema)
        _expand_home({"train": merged}, ["train.deepspeed"])
        errors = sorted(validator.iter_errors(merged), key=lambda e: list(e.absolute_path))
        if errors:
            raise ConfigError(
                "\n".join(
                    _describe(e).replace("config key ", f"config key variants.{name}.", 1) for e in errors
                )
            )
        _check_train(merged, f"variants.{name}.")
        out[name] = merged
    return out


def variant_trains(config: dict) -> dict[str, dict]:
    """Results prefix → train section: {"": train} for a single run, {"NAME/": …} per variant."""
    if not config["variants"]:
        return {"": config["train"]}
    return {f"{name}/": train for name, train in config["variants"].items()}


def _sorted(node):
    """``node`` with the keys of every dict in it sorted (lists keep their order: it has a meaning)."""
    if isinstance(node, dict):
        return {key: _sorted(node[key]) for key in sorted(node, key=str)}
    if isinstance(node, list):
        return [_sorted(value) for value in node]
    return node


def _check_finite(node, path: list) -> None:
    """Refuse NaN and ±inf anywhere (YAML's .nan and .inf pass a schema's number type and its bounds)."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite(value, [*path, key])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_finite(value, [*path, i])
    elif isinstance(node, float) and not math.isfinite(node):
        _fail(_key(path), f"{node} is not a finite number")


def _fail(key: str, message: str):
    raise ConfigError(f"config key {key}: {message}")


def _check_source(key: str, value: str) -> None:
    """``value`` (of ``key``) is an existing local directory, or a hub id; anything else can only be a
    local directory, and is refused here rather than when a job loads it."""
    if Path(value).is_dir():
        return
    if Path(value).exists():
        _fail(key, f"{value!r} is a file, not a model or dataset directory")
    if not is_hub_repo_id(value):
        _fail(key, f"directory {value!r} not found (and it is not a hub id, owner/name)")


def _check_semantics(config: dict) -> None:
    prompts = config["prompts"]
    if prompts["source"] == "local" and not Path(prompts["path"]).is_file():
        _fail("prompts.path", f"prompt file {prompts['path']!r} not found")
    if prompts["source"] == "snorkel":
        _check_source("prompts.dataset", prompts["dataset"])
        if len(prompts["train_splits"]) < config["iterations"]:
            _fail("prompts.train_splits", f"needs one split per iteration ({config['iterations']})")
    if config["model"]["base"] != "tiny":
        _check_source("model.base", config["model"]["base"])
    seeds = config["generate"]["sample_seeds"]
    if seeds is not None and len(seeds) != config["generate"]["k"]:
        _fail("generate.sample_seeds", f"has {len(seeds)} seeds but generate.k is {config['generate']['k']}")
    judge = config["judge"]
    # who uses each judge: judge.train, judge.eval, evaluate.extra_judges
    users = {judge[role]: f"judge.{role} is" for role in ("eval", "train")}
    for name in config["evaluate"]["extra_judges"]:
        users.setdefault(name, "evaluate.extra_judges names")
    if "reward_model" in users and not judge["reward_model"]["path"]:
        _fail("judge.reward_model.path", f"must be set: {users['reward_model']} reward_model")
    for name in sorted(set(users) & {"pairrm", "reward_model"}):
        _check_source(f"judge.{name}.path", judge[name]["path"])
    if "llm" in users:
        for key in ("base_url", "model"):
            if not judge["llm"][key]:
                _fail(f"judge.llm.{key}", f"must be set: {users['llm']} llm")
    if "llm" in users and judge["llm"]["template"] is not None:
        if not Path(judge["llm"]["template"]).is_file():
            _fail("judge.llm.template", f"template file {judge['llm']['template']!r} not found")
    if judge["prompt_text"] == "chat_template" and judge["train"] == "reward_model":
        _fail("judge.prompt_text", "chat_template is not for judge.train reward_model (it applies its own)")
    tiny = config["tiny_model"]
    if tiny["hidden_size"] % tiny["num_heads"]:
        _fail("tiny_model.num_heads", f"must divide hidden_size {tiny['hidden_size']}")
    _check_train(config["train"], "train.")
    alpaca = config["alpaca_eval"]
    if hub.is_file_url(alpaca["instructions"]):
        try:
            hub.parse_file_url(alpaca["instructions"])
        except ValueError as e:
            _fail("alpaca_eval.instructions", str(e))
    elif alpaca["enabled"] and not Path(alpaca["instructions"]).is_file():
        _fail("alpaca_eval.instructions", f"instruction file {alpaca['instructions']!r} not found")
    if alpaca["enabled"]:
        if alpaca["annotator"] == "local":
            for key in ("base_url", "model"):
                if not alpaca[key]:
                    _fail(f"alpaca_eval.{key}", "must be set: alpaca_eval.annotator is local")
    if alpaca["enabled"] and alpaca["generator"] is not None:
        from sppo.alpaca_eval import generator_settings

        try:
            generator_settings(alpaca["generator"])
        except (ValueError, KeyError) as e:
            _fail("alpaca_eval.generator", str(e))
    tasks = config["leaderboard"]["include_path"]
    if tasks is not None and not Path(tasks).is_dir():
        _fail("leaderboard.include_path", f"task directory {tasks!r} not found")


def _check_train(train: dict, prefix: str) -> None:
    """The checks of a train section (the train key, or a variant's whole section) beyond its schema."""
    if train["max_prompt_length"] >= train["max_length"]:
        _fail(f"{prefix}max_prompt_length", f"must be below {prefix}max_length ({train['max_length']})")
    per_step = train["per_device_batch_size"] * train["num_processes"] * train["nodes"]
    if train["global_batch_size"] % per_step:
        _fail(
            f"{prefix}global_batch_size",
            f"{train['global_batch_size']} is not a multiple of "
            f"per_device_batch_size × num_processes × nodes = {per_step}",
        )
    stop = train["stop_epochs"]
    if stop is not None and stop > train["schedule_epochs"]:
        _fail(f"{prefix}stop_epochs", f"{stop} exceeds {prefix}schedule_epochs ({train['schedule_epochs']})")
    if train["deepspeed"] is not None and not Path(train["deepspeed"]).is_file():
        _fail(f"{prefix}deepspeed", f"DeepSpeed config {train['deepspeed']!r} not found")
    if train["responses"] == "all" and train["loss"] != "sppo":
        _fail(f"{prefix}responses", f"all needs loss sppo ({prefix}loss {train['loss']} compares a pair)")
    if train["lora"]["enabled"] and train["deepspeed"] is not None:
        _fail(
            f"{prefix}lora.enabled",
            "LoRA trains without DeepSpeed (the frozen model is held whole by every process, so that its "
            f"adapter can be merged); set {prefix}deepspeed to null",
        )


def load(path: str | Path) -> dict:
    """Read a YAML config file and validate it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"config file {path}: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return validate(raw)


def _type_text(prop: dict) -> str:
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type", "")
    return " or ".join(kind) if isinstance(kind, list) else kind


def markdown() -> str:
    """config/README.md: every key of the schema with its type, default and description."""
    lines = [
        "# Configuration",
        "",
        "One YAML file configures a run: `config/config.yaml` (the offline toy) when the command line names",
        "none, else the files given with `snakemake TARGET --configfile FILE [FILE ...]`, later ones over",
        "earlier ones (name the toy first to put a file over it); `config/recipes/` holds the paper's",
        "recipes. A key that no file sets takes the default below (the paper's value), wherever the run",
        "starts from. The config is validated against `sppo/schemas/config.schema.yaml` before any job runs:",
        "an unknown key, a wrong type or an out-of-range value stops the run with a message naming the key.",
        "`snakemake --cores 1 show_config --configfile FILE` prints the resolved config, every key filled",
        "in. This page is generated from the schema (`python -m sppo.config > config/README.md`).",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]

    def walk(node: dict, prefix: str) -> None:
        for key, prop in node.get("properties", {}).items():
            name = f"{prefix}{key}"
            if prop.get("type") == "object" and "properties" in prop:
                lines.append(f"| **`{name}`** | section | | {' '.join(prop['description'].split())} |")
                walk(prop, f"{name}.")
                continue
            default = json.dumps(prop.get("default"), ensure_ascii=False)
            text = " ".join(prop["description"].split()).replace("|", "\\|")
            lines.append(f"| `{name}` | {_type_text(prop)} | `{default}` | {text} |")

    walk(schema(), "")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
