"""The vllm generation backend without vllm: its requests (per-sample seeds independent of shards,
chat-templated token ids), its rows (through a stand-in vllm module), and the clear error a run gets
where vllm is not installed.

vllm needs a GPU stack to install, so the stand-in mirrors vllm 0.33.0's signatures as released
(read from the wheel): ``SamplingParams`` is a msgspec Struct that refuses unknown keywords and checks
its values; ``LLM(model, *, ...)`` takes keyword-only settings and hands the rest to ``EngineArgs``,
a dataclass that refuses unknown ones; ``LLM.generate(prompts, sampling_params, *, use_tqdm)`` takes
token prompts as ``{"prompt_token_ids": [int, ...]}`` and one SamplingParams per prompt, and returns
RequestOutputs in input order."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
from conftest import CPU_MODEL_CONFIG, snakemake, write_config

from sppo import generate, generate_vllm, models
from sppo.chat import render_prompt

SETTINGS = {
    "k": 3,
    "temperature": 0.7,
    "top_p": 0.9,
    "max_new_tokens": 16,
    "sample_seeds": None,
    "batch_size": 4,
    "tensor_parallel_size": 2,
    "gpu_memory_utilization": 0.8,
}
MODEL_CONFIG = {**CPU_MODEL_CONFIG, "dtype": "bfloat16", "device": "auto"}
PROMPTS = [{"id": f"p{i}", "prompt": f"Question number {i}?"} for i in range(10)]


def test_every_sample_has_its_reference_seed():
    assert generate_vllm.sampling_kwargs(SETTINGS, row=7) == [
        {"n": 1, "seed": generate.batch_seed(seed, 7), "temperature": 0.7, "top_p": 0.9, "max_tokens": 16}
        for seed in (0, 50, 100)
    ]
    custom = generate_vllm.sampling_kwargs({**SETTINGS, "sample_seeds": [1, 2, 3]}, row=0)
    assert [kw["seed"] for kw in custom] == [generate.batch_seed(s, 0) for s in (1, 2, 3)]


def test_requests_do_not_depend_on_the_shards(tiny_model_dir):
    tokenizer = models.load_tokenizer(str(tiny_model_dir), MODEL_CONFIG)

    def by_id(shards):
        out = {}
        for shard in range(shards):
            batches = generate.shard_rows(PROMPTS, shard, shards, SETTINGS["batch_size"])
            for row, ids, kwargs in generate_vllm.requests(tokenizer, batches, SETTINGS):
                out[row["id"]] = (ids, kwargs)
        return out

    one, three = by_id(1), by_id(3)
    assert one == three and list(one) == [p["id"] for p in PROMPTS]
    ids, kwargs = one["p5"]
    assert kwargs == generate_vllm.sampling_kwargs(SETTINGS, row=5)
    # the chat template's text, tokenized without a second BOS
    assert (
        ids
        == tokenizer(render_prompt(tokenizer, "Question number 5?"), add_special_tokens=False)["input_ids"]
    )


class FakeSamplingParams:
    """vllm 0.33.0's SamplingParams (vllm/sampling_params.py): the fields used here, their defaults
    (n 1, temperature 1.0, top_p 1.0, seed None, max_tokens 16), unknown keywords refused, and the
    checks of ``_verify_args``."""

    def __init__(self, *, n=1, temperature=1.0, top_p=1.0, seed=None, max_tokens=16, **unknown):
        if unknown:
            raise TypeError(f"Unexpected keyword argument {next(iter(unknown))!r}")
        assert isinstance(n, int) and n >= 1
        assert 0 <= temperature <= 2 and 0 < top_p <= 1
        assert max_tokens is None or max_tokens >= 1
        self.n, self.temperature, self.top_p, self.seed, self.max_tokens = (
            n,
            temperature,
            top_p,
            seed,
            max_tokens,
        )


# The EngineArgs fields (vllm/engine/arg_utils.py) that LLM(**kwargs) may receive here.
ENGINE_ARGS = {"enable_prefix_caching"}


class FakeLLM:
    """Stands in for vllm.LLM (vllm/entrypoints/llm.py): answers each request with its prompt length
    and seed."""

    made: dict = {}

    def __init__(
        self,
        model: str,
        *,
        trust_remote_code=False,
        tensor_parallel_size=1,
        dtype="auto",
        revision=None,
        seed=0,
        gpu_memory_utilization=0.92,
        **kwargs,
    ):
        if set(kwargs) - ENGINE_ARGS:
            raise TypeError(
                f"EngineArgs.__init__() got unexpected keyword arguments {set(kwargs) - ENGINE_ARGS}"
            )
        FakeLLM.made = {
            "model": model,
            "trust_remote_code": trust_remote_code,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "revision": revision,
            "gpu_memory_utilization": gpu_memory_utilization,
            **kwargs,
        }

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True):
        assert len(prompts) == len(sampling_params)  # else vllm raises VLLMValidationError
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            assert isinstance(ids, list) and all(type(i) is int for i in ids)
        return [
            types.SimpleNamespace(
                outputs=[types.SimpleNamespace(text=f"{len(p['prompt_token_ids'])}:{sp.seed}")]
            )
            for p, sp in zip(prompts, sampling_params, strict=True)
        ]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_rows_pair_each_response_with_its_prompt_and_sample(fake_vllm, tiny_model_dir):
    batches = generate.shard_rows(PROMPTS, 1, 2, SETTINGS["batch_size"])  # rows 8, 9
    rows = generate_vllm.generate_shard(str(tiny_model_dir), MODEL_CONFIG, batches, SETTINGS)
    assert [r["id"] for r in rows] == ["p8", "p9"]
    for row, position in zip(rows, (8, 9), strict=True):
        assert set(row) == {"id", "prompt", "responses"}
        seeds = [kw["seed"] for kw in generate_vllm.sampling_kwargs(SETTINGS, position)]
        assert [r.split(":")[1] for r in row["responses"]] == [str(s) for s in seeds]
    assert FakeLLM.made["tensor_parallel_size"] == 2
    assert FakeLLM.made["gpu_memory_utilization"] == 0.8
    assert FakeLLM.made["dtype"] == "bfloat16"
    assert FakeLLM.made["enable_prefix_caching"] is True
    assert FakeLLM.made["model"] == str(tiny_model_dir)


def test_missing_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(RuntimeError, match="vllm is not installed"):
        generate_vllm.require_vllm()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_a_run_with_backend_vllm_but_no_vllm_fails_at_the_generate_job(workflow: Path):
    write_config(
        workflow, {"split": {"eval_size": 12, "max_per_iteration": 8}, "generate": {"backend": "vllm"}}
    )
    proc = snakemake(workflow, "results/iter1/generate/shard0.jsonl", check=False)
    assert proc.returncode != 0
    log = (workflow / "logs" / "generate" / "iter1" / "shard0.log").read_text()
    assert generate_vllm.MISSING in log
