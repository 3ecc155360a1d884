"""Bad configs fail at validation with the key named; the defaults are complete."""

import copy
import os

import pytest
import yaml
from conftest import REPO

from sppo import config as cfg


@pytest.fixture
def default(monkeypatch):
    monkeypatch.chdir(REPO)
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def errors_of(config):
    with pytest.raises(cfg.ConfigError) as info:
        cfg.validate(config)
    return str(info.value)


def test_default_config_validates_and_fills_defaults(default):
    full = cfg.validate(default)
    assert full["generate"]["k"] == 5
    assert full["train"]["max_grad_norm"] == 1.0  # not in config.yaml: from the schema
    assert full["model"]["trust_remote_code"] is False


def test_empty_config_is_the_schema_defaults(monkeypatch):
    monkeypatch.chdir(REPO)
    full = cfg.validate({})
    assert full["train"]["eta"] == 1000 and full["train"]["learning_rate"] == 5e-7
    assert full["generate"]["temperature"] == 0.7 and full["generate"]["max_new_tokens"] == 2048


def reverse_keys(node):
    if isinstance(node, dict):
        return {key: reverse_keys(node[key]) for key in reversed(list(node))}
    return node


def test_key_order_does_not_change_the_validated_config(default):
    """Rules take config sections as params, compared by repr: the same values must give the same repr
    whatever order the file (or the defaults filled in) put the keys in."""
    full = cfg.validate(default)
    reordered = reverse_keys(default)
    assert list(reordered) != list(default) and list(reordered["train"]) != list(default["train"])
    assert repr(cfg.validate(reordered)) == repr(full)
    assert list(full) == sorted(full) and list(full["train"]) == sorted(full["train"])
    seeds = cfg.validate({**default, "generate": {**default["generate"], "sample_seeds": [9, 1, 5, 3, 2]}})
    assert seeds["generate"]["sample_seeds"] == [9, 1, 5, 3, 2]  # lists keep their order


def test_every_schema_key_has_default_and_description():
    def walk(node, path):
        for key, prop in node.get("properties", {}).items():
            assert "default" in prop, f"{path}{key} has no default"
            assert prop.get("description"), f"{path}{key} has no description"
            walk(prop, f"{path}{key}.")

    walk(cfg.schema(), "")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"generate": {"k": 1}}, "config key generate.k: 1 is less than the minimum of 2"),
        ({"train": {"eta": 0}}, "config key train.eta: 0 is less than or equal to the minimum of 0"),
        ({"train": {"eta": -5}}, "config key train.eta"),
        ({"shards": 0}, "config key shards: 0 is less than the minimum of 1"),
        ({"split": {"eval_size": 4}}, "config key split.eval_size: 4 is less than the minimum of 5"),
        (
            {"generate": {"temperature": "hot"}},
            "config key generate.temperature: 'hot' is not of type 'number'",
        ),
        ({"generate": {"topk": 3}}, "config key generate.topk: unknown key"),
        ({"tempo": 3}, "config key tempo: unknown key"),
        (
            {"prompts": {"path": "data/missing.jsonl"}},
            "config key prompts.path: prompt file 'data/missing.jsonl'",
        ),
        (
            {"train": {"global_batch_size": 10, "per_device_batch_size": 4}},
            "config key train.global_batch_size",
        ),
        ({"train": {"stop_epochs": 3, "schedule_epochs": 1}}, "config key train.stop_epochs"),
        ({"generate": {"sample_seeds": [1, 2]}}, "config key generate.sample_seeds: has 2 seeds"),
        ({"judge": {"train": "gpt"}}, "config key judge.train"),
        ({"generate": {"long_prompts": "skip"}}, "config key generate.long_prompts"),
        ({"winprob": {"drop_truncated": "yes"}}, "config key winprob.drop_truncated"),
        ({"model": {"trust_remote_code": "yes"}}, "config key model.trust_remote_code"),
        ({"model": {"attn_implementation": "fast"}}, "config key model.attn_implementation"),
        ({"train": {"eta": float("nan")}}, "config key train.eta: nan is not a finite number"),
        ({"train": {"learning_rate": float("inf")}}, "config key train.learning_rate: inf is not a finite"),
        ({"generate": {"top_p": float("-inf")}}, "config key generate.top_p: -inf is not a finite number"),
        ({"train": {"warmup_ratio": 1.0}}, "config key train.warmup_ratio: 1.0 is greater than or equal"),
        ({"train": {"deepspeed": "ds/missing.json"}}, "config key train.deepspeed: DeepSpeed config"),
        (
            {"leaderboard": {"include_path": "tasks/missing"}},
            "config key leaderboard.include_path: task directory 'tasks/missing' not found",
        ),
        ({"train": {"loss": "kto"}}, "config key train.loss: 'kto' is not one of"),
        ({"judge": {"eval": "llm"}}, "config key judge.llm.base_url: must be set: judge.eval is llm"),
        (
            {"evaluate": {"extra_judges": ["llm"]}},
            "config key judge.llm.base_url: must be set: evaluate.extra_judges names llm",
        ),
        ({"evaluate": {"extra_judges": ["gpt"]}}, "config key evaluate.extra_judges.0: 'gpt' is not one of"),
        (
            {"alpaca_eval": {"enabled": True, "instructions": "ae/missing.json"}},
            "config key alpaca_eval.instructions: instruction file 'ae/missing.json' not found",
        ),
        (
            {"alpaca_eval": {"enabled": True, "instructions": "data/prompts.jsonl"}},
            "config key alpaca_eval.base_url: must be set: alpaca_eval.annotator is local",
        ),
        (
            {
                "alpaca_eval": {
                    "enabled": True,
                    "instructions": "data/prompts.jsonl",
                    "annotator": "weighted_alpaca_eval_gpt4_turbo",
                    "generator": "SPPO-Mistral7B-PairRM-ExPO",
                }
            },
            "config key alpaca_eval.generator: 'SPPO-Mistral7B-PairRM-ExPO' sets frequency_penalty",
        ),
        (
            # a hub file reference names a dataset repository and a file in it (checked when disabled too)
            {"alpaca_eval": {"instructions": "hf://datasets/tatsu-lab/alpaca_eval"}},
            "config key alpaca_eval.instructions: 'hf://datasets/tatsu-lab/alpaca_eval' is not a hub file"
            " reference hf://datasets/<owner>/<name>[@<revision>]/<file>",
        ),
        (
            {"alpaca_eval": {"instructions": "hf://tatsu-lab/alpaca_eval/alpaca_eval_gpt4_baseline.json"}},
            "config key alpaca_eval.instructions: 'hf://tatsu-lab/alpaca_eval/alpaca_eval_gpt4_baseline.json'"
            " is not a hub file reference",
        ),
        (
            {"judge": {"train": "llm", "llm": {"base_url": "http://localhost:8000/v1"}}},
            "config key judge.llm.model: must be set: judge.train is llm",
        ),
        (
            {"judge": {"eval": "llm", "llm": {"base_url": "u", "model": "m", "template": "t/missing.txt"}}},
            "config key judge.llm.template: template file 't/missing.txt' not found",
        ),
        (
            {"model": {"base": "/models/missing"}},
            "config key model.base: directory '/models/missing' not found",
        ),
        ({"model": {"base": "../gemma"}}, "config key model.base: directory '../gemma' not found"),
        ({"model": {"base": "data/prompts.jsonl"}}, "config key model.base: 'data/prompts.jsonl' is a file"),
        (
            {"judge": {"train": "pairrm", "pairrm": {"path": "ckpt/pairrm/v1"}}},
            "config key judge.pairrm.path: directory 'ckpt/pairrm/v1' not found",
        ),
        (
            {"judge": {"eval": "reward_model", "reward_model": {"path": "~/rm"}}},
            # ~ is the home directory (expanded before the check)
            f"config key judge.reward_model.path: directory {os.path.expanduser('~/rm')!r} not found",
        ),
        (
            {"prompts": {"source": "snorkel", "dataset": "./snorkel"}},
            "config key prompts.dataset: directory './snorkel' not found",
        ),
        ({"train": {"responses": "all", "loss": "dpo"}}, "config key train.responses: all needs loss sppo"),
        ({"train": {"reference": "initial"}}, "config key train.reference"),
        ({"variants": {"dpo": {"loss": "dpx"}}}, "config key variants.dpo.loss: 'dpx' is not one of"),
        ({"variants": {"dpo": {"betta": 0.1}}}, "config key variants.dpo.betta: unknown key"),
        ({"variants": {"dpo": {"beta": 0}}}, "config key variants.dpo.beta: 0 is less than or equal"),
        ({"variants": {"x": {"beta": float("nan")}}}, "config key variants.x.beta: nan is not a finite"),
        ({"variants": {"ipo": {"loss": "ipo", "responses": "all"}}}, "config key variants.ipo.responses"),
        ({"variants": {"big": {"num_processes": 2}}}, "config key variants.big.num_processes: sizes"),
        ({"variants": {"Big Run": {}}}, "config key variants: 'Big Run' does not match"),
        ({"variants": {"iter2": {}}}, "config key variants: 'iter2' should not be valid"),
        ({"variants": {"provenance": {}}}, "config key variants: 'provenance' should not be valid"),
        ({"variants": {"dpo": "fast"}}, "config key variants.dpo: 'fast' is not of type"),
    ],
)
def test_bad_values_name_the_key(default, change, message):
    bad = copy.deepcopy(default)
    for section, value in change.items():
        if isinstance(value, dict):
            bad.setdefault(section, {}).update(value)
        else:
            bad[section] = value
    assert message in errors_of(bad)


def test_model_sources_are_hub_ids_or_existing_directories(default, tmp_path):
    """model.base, the judges' paths and prompts.dataset: hub ids (name or owner/name) are left for the
    job to fetch; an existing directory is taken at any path; an unused judge's path is not checked."""
    ok = copy.deepcopy(default)
    ok["model"] = {"base": "google/gemma-2-9b-it"}
    ok["judge"] = {"train": "pairrm", "eval": "reward_model", "pairrm": {"path": "pairrm"}}
    ok["judge"]["reward_model"] = {"path": str(tmp_path)}
    ok["prompts"] = {"source": "snorkel", "dataset": str(tmp_path)}
    assert cfg.validate(ok)["judge"]["reward_model"]["path"] == str(tmp_path)
    unused = copy.deepcopy(default)
    unused["judge"] = {"train": "synthetic", "eval": "synthetic", "pairrm": {"path": "/not/here"}}
    cfg.validate(unused)


def test_variants_are_whole_train_sections(default):
    """A variant is the train section with its own keys over it; one run is the variant ""."""
    one = cfg.validate(default)
    assert one["variants"] == {} and cfg.variant_trains(one) == {"": one["train"]}
    both = cfg.validate({**default, "variants": {"sppo": None, "dpo": {"loss": "dpo", "beta": 0.5}}})
    trains = cfg.variant_trains(both)
    assert list(trains) == ["dpo/", "sppo/"]  # sorted, as every key of the validated config
    assert trains["sppo/"] == both["train"]
    assert trains["dpo/"] == {**both["train"], "loss": "dpo", "beta": 0.5}
    assert cfg.validate(copy.deepcopy(both)) == both  # idempotent: the audit re-validates the run's config
    lora = cfg.validate({**default, "variants": {"lora": {"lora": {"enabled": True, "rank": 4}}}})
    assert lora["variants"]["lora"]["lora"] == {**lora["train"]["lora"], "enabled": True, "rank": 4}
    assert cfg.validate(copy.deepcopy(lora)) == lora


def test_unreadable_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("generate: [unclosed\n")
    with pytest.raises(cfg.ConfigError, match="config file"):
        cfg.load(path)


def test_config_readme_documents_every_key():
    assert (REPO / "config" / "README.md").read_text() == cfg.markdown(), (
        "run: python -m sppo.config > config/README.md"
    )


def test_numbers_written_as_yaml_1_1_strings_are_numbers(default, tmp_path):
    """PyYAML (YAML 1.1) reads ``1e-6`` as the string "1e-6"; where the schema wants a number it is
    that number (exactly: float("1e-6") is the literal's own double), an integer key takes a whole
    one, and text that is no number is still refused naming the key."""
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 1e-6\n  eta: 1E3\ngenerate:\n  max_new_tokens: 5e1\n")
    raw = yaml.safe_load(path.read_text())
    assert raw["train"]["learning_rate"] == "1e-6"  # the YAML 1.1 reading this guards against
    full = cfg.load(path)
    assert full["train"]["learning_rate"] == 1e-6 and full["train"]["eta"] == 1000.0
    assert full["generate"]["max_new_tokens"] == 50 and isinstance(full["generate"]["max_new_tokens"], int)
    bad = {**default, "generate": {**default["generate"], "max_new_tokens": "2.5e0"}}
    assert "config key generate.max_new_tokens" in errors_of(bad)
    assert "config key train.learning_rate" in errors_of({**default, "train": {"learning_rate": "fast"}})
    # snakemake --config 'generate={k: 3}' gives strings (YAML's BaseLoader)
    cli = cfg.validate({**default, "generate": {"k": "3"}, "train": {"gradient_checkpointing": "true"}})
    assert cli["generate"]["k"] == 3 and cli["train"]["gradient_checkpointing"] is True
    assert cfg.validate({**default, "train": {"stop_epochs": "null"}})["train"]["stop_epochs"] is None
    dpo = cfg.validate({**default, "variants": {"dpo": {"loss": "dpo", "learning_rate": "5e-7"}}})
    assert dpo["variants"]["dpo"]["learning_rate"] == 5e-7


def test_home_is_expanded_in_path_keys(default, tmp_path, monkeypatch):
    """``~`` in a path key is the home directory, before the key is checked to exist."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models" / "llama").mkdir(parents=True)
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    (tmp_path / "zero3.json").write_text("{}\n")
    changed = copy.deepcopy(default)
    changed["model"] = {"base": "~/models/llama"}
    changed["prompts"] = {**default.get("prompts", {}), "source": "local", "path": "~/prompts.jsonl"}
    changed["train"] = {**default["train"], "deepspeed": "~/zero3.json"}
    changed["variants"] = {"big": {"deepspeed": "~/zero3.json"}}
    full = cfg.validate(changed)
    assert full["model"]["base"] == str(tmp_path / "models" / "llama")
    assert full["prompts"]["path"] == str(tmp_path / "prompts.jsonl")
    assert full["train"]["deepspeed"] == full["variants"]["big"]["deepspeed"] == str(tmp_path / "zero3.json")
    missing = {**default, "model": {"base": "~/models/none"}}
    assert f"directory {str(tmp_path / 'models' / 'none')!r} not found" in errors_of(missing)


def test_dotted_keys_merge_into_their_section(default):
    """``snakemake --config generate.k=3`` gives the top-level key "generate.k": it sets generate.k
    and keeps the section's other keys; a dotted key outside the sections is refused naming it."""
    full = cfg.validate({**default, "generate.k": 3, "judge.pairrm.batch_size": 4})
    assert full["generate"]["k"] == 3
    assert full["generate"]["temperature"] == cfg.validate(default)["generate"]["temperature"]
    assert full["judge"]["pairrm"]["batch_size"] == 4 and "generate.k" not in full
    assert "config key nosuch.k: nosuch is not a section" in errors_of({**default, "nosuch.k": 3})
    assert "config key seed.x: seed is not a section" in errors_of({**default, "seed.x": 3})
    assert "config key generate.kk: unknown key" in errors_of({**default, "generate.kk": 3})
