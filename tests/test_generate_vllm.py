"""The vllm generation backend without vllm: its requests (per-sample seeds independent of shards,
chat-templated token ids), its rows (through a stand-in vllm module), and the clear error a run gets
where vllm is not installed.

vllm needs a GPU stack to install, so the stand-in mirrors vllm 0.33.0's signatures as released
(read from the wheel): ``SamplingParams`` is a msgspec Struct that refuses unknown keywords and checks
its values; ``LLM(model, *, ...)`` takes keyword-only settings and hands the rest to ``EngineArgs``,
a dataclass that refuses unknown ones; ``LLM.generate(prompts, sampling_params, *, use_tqdm)`` takes
token prompts as ``{"prompt_token_ids": [int, ...]}`` and one SamplingParams per prompt, refuses a
prompt of max_model_len tokens or more (by default the model config's max_position_embeddings) with a
ValueError, and returns RequestOutputs in input order, each CompletionOutput with its text and
finish_reason ("stop" or "length")."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import pytest
from conftest import CPU_MODEL_CONFIG, snakemake, write_config
from transformers import AutoTokenizer

from sppo import evaluate, generate, models, sampling, sampling_vllm
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
    "batch_invariant": False,
}
MODEL_CONFIG = {**CPU_MODEL_CONFIG, "dtype": "bfloat16", "device": "auto"}
BACKEND = {"backend": "vllm", "long_prompts": "drop", "batch_invariant": False}
PROMPTS = [{"id": f"p{i}", "prompt": f"Question number {i}?"} for i in range(10)]


def test_every_sample_has_its_reference_seed():
    assert sampling_vllm.sampling_kwargs(SETTINGS, row=7) == [
        {"n": 1, "seed": generate.batch_seed(seed, 7), "temperature": 0.7, "top_p": 0.9, "max_tokens": 16}
        for seed in (0, 50, 100)
    ]
    custom = sampling_vllm.sampling_kwargs({**SETTINGS, "sample_seeds": [1, 2, 3]}, row=0)
    assert [kw["seed"] for kw in custom] == [generate.batch_seed(s, 0) for s in (1, 2, 3)]


def test_requests_do_not_depend_on_the_shards(tiny_model_dir):
    tokenizer = models.load_tokenizer(str(tiny_model_dir), MODEL_CONFIG)

    def by_id(shards):
        out = {}
        for shard in range(shards):
            batches = generate.shard_rows(PROMPTS, shard, shards, SETTINGS["batch_size"])
            for row, ids, kwargs in sampling_vllm.requests(tokenizer, batches, SETTINGS):
                out[row["id"]] = (ids, kwargs)
        return out

    one, three = by_id(1), by_id(3)
    assert one == three and list(one) == [p["id"] for p in PROMPTS]
    ids, kwargs = one["p5"]
    assert kwargs == sampling_vllm.sampling_kwargs(SETTINGS, row=5)
    # the chat template's text, tokenized without a second BOS
    assert (
        ids
        == tokenizer(render_prompt(tokenizer, "Question number 5?"), add_special_tokens=False)["input_ids"]
    )


def test_requests_with_a_text_template_and_stop_tokens(tiny_model_dir):
    """alpaca_eval.generator's settings reach vLLM: the template's tokens (sppo.chat.prompt_ids) and
    the stop tokens in every request's SamplingParams."""
    from sppo.chat import prompt_ids

    tokenizer = models.load_tokenizer(str(tiny_model_dir), MODEL_CONFIG)
    settings = {**SETTINGS, "prompt_template": "Q: {instruction}\nA:", "stop_token_ids": [7, 9]}
    batches = generate.shard_rows(PROMPTS, 0, 1, SETTINGS["batch_size"])
    (row, ids, kwargs), *_ = sampling_vllm.requests(tokenizer, batches, settings)
    assert ids == prompt_ids(tokenizer, row["prompt"], "Q: {instruction}\nA:")
    assert ids == tokenizer("Q: " + row["prompt"] + "\nA:")["input_ids"]
    assert all(k["stop_token_ids"] == [7, 9] for k in kwargs)
    FakeSamplingParams(**kwargs[0])  # a field of vllm's SamplingParams


class FakeSamplingParams:
    """vllm 0.33.0's SamplingParams (vllm/sampling_params.py): the fields used here, their defaults
    (n 1, temperature 1.0, top_p 1.0, seed None, max_tokens 16, stop_token_ids None), unknown keywords
    refused, and the checks of ``_verify_args``."""

    def __init__(
        self, *, n=1, temperature=1.0, top_p=1.0, seed=None, max_tokens=16, stop_token_ids=None, **unknown
    ):
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
    and seed; an odd seed "ran out of tokens" (finish_reason length), an even one stopped."""

    made: dict = {}

    def __init__(
        self,
        model: str,
        *,
        tokenizer=None,
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
            "VLLM_BATCH_INVARIANT": os.environ.get("VLLM_BATCH_INVARIANT"),
            "model": model,
            # vllm loads its tokenizer from this path (AutoTokenizer) while the engine runs
            "tokenizer": AutoTokenizer.from_pretrained(tokenizer or model),
            "trust_remote_code": trust_remote_code,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "revision": revision,
            "gpu_memory_utilization": gpu_memory_utilization,
            **kwargs,
        }
        config = json.loads((Path(model) / "config.json").read_text())
        self.max_model_len = config["max_position_embeddings"]

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True):
        assert len(prompts) == len(sampling_params)  # else vllm raises VLLMValidationError
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            assert isinstance(ids, list) and all(type(i) is int for i in ids)
            if len(ids) >= self.max_model_len:  # vllm's input processor, before any generation
                raise ValueError(
                    f"The decoder prompt (length {len(ids)}) is longer than the maximum model length "
                    f"of {self.max_model_len}."
                )
        return [
            types.SimpleNamespace(
                outputs=[
                    types.SimpleNamespace(
                        text=f"{len(p['prompt_token_ids'])}:{sp.seed}",
                        finish_reason="length" if sp.seed % 2 else "stop",
                    )
                ]
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
    rows = sampling_vllm.generate_shard(str(tiny_model_dir), MODEL_CONFIG, batches, SETTINGS)
    assert [r["id"] for r in rows] == ["p8", "p9"]
    for row, position in zip(rows, (8, 9), strict=True):
        assert set(row) == {"id", "prompt", "responses", "finish_reasons"}
        seeds = [kw["seed"] for kw in sampling_vllm.sampling_kwargs(SETTINGS, position)]
        assert [r.split(":")[1] for r in row["responses"]] == [str(s) for s in seeds]
        # each sample keeps its own finish reason, in sample order
        assert row["finish_reasons"] == ["length" if s % 2 else "stop" for s in seeds]
    assert FakeLLM.made["tensor_parallel_size"] == 2
    assert FakeLLM.made["gpu_memory_utilization"] == 0.8
    assert FakeLLM.made["dtype"] == "bfloat16"
    assert FakeLLM.made["enable_prefix_caching"] is True
    assert FakeLLM.made["model"] == str(tiny_model_dir)
    # vllm's tokenizer is the workflow's: the same ids, special tokens and template
    ours, theirs = models.load_tokenizer(str(tiny_model_dir), MODEL_CONFIG), FakeLLM.made["tokenizer"]
    text = render_prompt(ours, "Grüße, \n  spaces") + " an answer"
    assert theirs(text)["input_ids"] == ours(text)["input_ids"]
    assert (theirs.eos_token_id, theirs.chat_template) == (ours.eos_token_id, ours.chat_template)


def long_prompt(tokenizer, context: int) -> str:
    """A prompt whose rendered tokens alone exceed ``context``."""
    text = "Please read this and answer. " * 8
    while sampling.prompt_tokens(tokenizer, text) <= context:
        text += text
    return text + "What is the answer?"


def test_a_prompt_longer_than_the_context_does_not_fail_the_shard(fake_vllm, tiny_model_dir):
    tokenizer = models.load_tokenizer(str(tiny_model_dir), MODEL_CONFIG)
    context = sampling.context_length(str(tiny_model_dir), MODEL_CONFIG)
    assert context == json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]
    prompts = [*PROMPTS[:2], {"id": "long", "prompt": long_prompt(tokenizer, context)}, *PROMPTS[2:4]]
    settings = {**SETTINGS, **BACKEND}
    # unchecked, the stand-in refuses the long prompt as vllm does: the whole shard fails
    with pytest.raises(ValueError, match="longer than the maximum model length"):
        sampling_vllm.generate_shard(
            str(tiny_model_dir), MODEL_CONFIG, generate.shard_rows(prompts, 0, 1, 4), settings
        )
    rows, stats = generate.respond(str(tiny_model_dir), MODEL_CONFIG, prompts, 0, 1, settings)
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3"]
    cut = sum(f == "length" for r in rows for f in r["finish_reasons"])
    assert stats == {
        "prompts": 5,
        "cut": 0,
        "dropped": 1,
        "context": context,
        "budget": 16,
        "long_prompts": "drop",
        "responses": 4 * 3,
        "responses_cut": cut,
    }
    # the dropped prompt left a hole: p2 and p3 keep their positions (3, 4) and so their seeds
    assert [r.split(":")[1] for r in rows[2]["responses"]] == [
        str(kw["seed"]) for kw in sampling_vllm.sampling_kwargs(SETTINGS, 3)
    ]
    # cut instead: the prompt's end is kept, rendered short enough for the budget
    rows, stats = generate.respond(
        str(tiny_model_dir), MODEL_CONFIG, prompts, 0, 1, {**settings, "long_prompts": "cut"}
    )
    assert (stats["cut"], stats["dropped"]) == (1, 0)
    text = rows[2]["prompt"]
    assert text.endswith("What is the answer?") and len(text) < len(prompts[2]["prompt"])
    # at most the budget's room, and a few tokens of slack at most (tokens can merge at the cut)
    assert context - 16 - 8 <= sampling.prompt_tokens(tokenizer, text) <= context - 16
    assert int(rows[2]["responses"][0].split(":")[0]) == sampling.prompt_tokens(tokenizer, text)


def test_evaluation_answers_use_the_vllm_backend(fake_vllm, tiny_model_dir):
    settings = {**BACKEND, "tensor_parallel_size": 1, "gpu_memory_utilization": 0.5}
    settings |= {"max_new_tokens": 16, "temperature": 0.7, "top_p": 0.9, "batch_size": 4}
    rows, stats = evaluate.answer(str(tiny_model_dir), MODEL_CONFIG, PROMPTS[:5], settings, seed=42)
    assert [r["id"] for r in rows] == [p["id"] for p in PROMPTS[:5]]
    for position, row in enumerate(rows):
        seed = generate.batch_seed(42, position)  # the run's seed, as generate draws sample k
        assert row["output"].split(":")[1] == str(seed)
        assert row["finish_reason"] == ("length" if seed % 2 else "stop")
    assert stats["responses"] == 5 and stats["responses_cut"] == sum(
        r["finish_reason"] == "length" for r in rows
    )
    assert FakeLLM.made["gpu_memory_utilization"] == 0.5


def test_batch_invariant_mode_is_switched_on_before_vllm_starts(fake_vllm, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "0")  # restored after the test
    batches = generate.shard_rows(PROMPTS, 0, 1, SETTINGS["batch_size"])
    sampling_vllm.generate_shard(str(tiny_model_dir), MODEL_CONFIG, batches, SETTINGS)
    assert FakeLLM.made["VLLM_BATCH_INVARIANT"] == "0"  # off: the environment is left as it was
    sampling_vllm.generate_shard(
        str(tiny_model_dir), MODEL_CONFIG, batches, {**SETTINGS, "batch_invariant": True}
    )
    assert FakeLLM.made["VLLM_BATCH_INVARIANT"] == "1"


def test_missing_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(RuntimeError, match="vllm is not installed"):
        sampling_vllm.require_vllm()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_a_run_with_backend_vllm_but_no_vllm_fails_at_the_generate_job(workflow: Path):
    write_config(
        workflow, {"split": {"eval_size": 12, "max_per_iteration": 8}, "generate": {"backend": "vllm"}}
    )
    proc = snakemake(workflow, "results/iter1/generate/shard0.jsonl", check=False)
    assert proc.returncode != 0
    log = (workflow / "logs" / "generate" / "iter1" / "shard0.log").read_text()
    assert sampling_vllm.MISSING in log


@pytest.mark.parametrize("script", ["generate.py", "evaluate_answers.py", "train.py"])
def test_a_spawned_worker_does_not_run_the_script_again(script):
    """vLLM (generate.py, evaluate_answers.py) and torch multiprocessing (train.py) may start workers
    with "spawn", which import the main module again under the name __mp_main__: the script's body
    must not run then.
    With no ``snakemake`` object and no arguments, running the body would fail at once."""
    import runpy

    path = Path(__file__).parents[1] / "scripts" / script
    runpy.run_path(str(path), run_name="__mp_main__", init_globals={"snakemake": None})
    with pytest.raises((AttributeError, SystemExit)):  # as the main module, the body runs
        runpy.run_path(str(path), run_name="__main__", init_globals={"snakemake": None})
