"""LoRA adapters (train.lora, sppo/lora.py): only the adapters train (and modules_to_save, the tied
embedding once), π_t is π_{t−1} with the adapter merged in and gives the adapter model's log-probs,
gradient checkpointing and bf16 work with and without LoRA, and the default iter3 with LoRA and the
embedding and norms trained raises the win rate as clearly as the full fine-tune."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import (
    CPU_MODEL_CONFIG,
    REPO,
    TINY_PAIRS,
    early_result,
    finished_copy,
    run_train,
    snakemake,
    train_settings,
    write_config,
)
from safetensors.torch import load_file

from sppo import io, lora, models
from sppo.config import ConfigError, validate
from sppo.logprobs import collate_groups, encode_rows, response_logps

LORA = {"enabled": True, "rank": 4, "alpha": 8, "dropout": 0.0}  # scale 2; default target modules
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


SAVE = ["embed_tokens", "norm"]  # the tied embedding and head, and every RMSNorm


def lora_defaults() -> dict:
    return train_settings()["lora"]


def settings(*, with_lora: bool, **overrides) -> dict:
    """Three RMSprop steps of 2 × 2 pairs (accumulation 2) at a constant rate, large enough to move."""
    lora_section = overrides.pop("lora", {**lora_defaults(), **(LORA if with_lora else {})})
    return train_settings(
        eta=10,
        learning_rate=1e-2,
        lr_scheduler="constant_with_warmup",
        warmup_ratio=0.0,
        global_batch_size=TINY_PAIRS,
        per_device_batch_size=2,
        schedule_epochs=3,
        max_length=64,
        max_prompt_length=32,
        lora=lora_section,
        **overrides,
    )


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tiny_pairs, tmp_path_factory):
    """π_1 of the tiny model trained with the named variant (each trained once, on first use)."""
    variants = {
        "lora": settings(with_lora=True),
        "lora-checkpointing": settings(with_lora=True, gradient_checkpointing=True),
        "lora-checkpointing-bf16": settings(with_lora=True, gradient_checkpointing=True, bf16=True),
        "lora-save": settings(with_lora=True, lora={**lora_defaults(), **LORA, "modules_to_save": SAVE}),
        "full": settings(with_lora=False),
        "full-checkpointing-bf16": settings(with_lora=False, gradient_checkpointing=True, bf16=True),
    }
    done = {}

    def get(name: str):
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "model"
            run_train(tiny_model_dir, tiny_pairs, out, variants[name], CPU_MODEL_CONFIG)
            done[name] = out
        return done[name]

    return get


def batch(model_dir, pairs_path) -> dict:
    tokenizer = models.load_tokenizer(str(model_dir), CPU_MODEL_CONFIG)
    groups, _ = encode_rows(tokenizer, io.read_jsonl(pairs_path), 64, 32, "response", "pair")
    return collate_groups(groups, tokenizer.pad_token_id)


def test_only_the_adapters_train_and_get_gradients_under_checkpointing(tiny_model_dir, tiny_pairs):
    model = models.load_model(str(tiny_model_dir), CPU_MODEL_CONFIG, for_training=True)
    layers = {
        name: (module.in_features, module.out_features)
        for name, module in model.named_modules()
        if name.rsplit(".", 1)[-1] in TARGETS
    }
    model = lora.wrap(model.train(), {**LORA, "target_modules": list(TARGETS)}, seed=0)
    model.gradient_checkpointing_enable()  # as the Trainer does with train.gradient_checkpointing
    assert model.is_gradient_checkpointing
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable), trainable
    assert sum(p.numel() for p in trainable.values()) == sum(4 * (i + o) for i, o in layers.values())
    assert len(trainable) == 2 * len(layers) == 2 * 7 * 2  # A and B of 7 projections in 2 layers

    response_logps(model, batch(tiny_model_dir, tiny_pairs), 16).sum().backward()
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(model.get_parameter(name).grad is None for name in frozen)
    # B starts at zero, so A's gradient is zero at the first step and B's is not
    b_grads = [p.grad for name, p in trainable.items() if ".lora_B." in name]
    assert len(b_grads) == len(layers) and all(g is not None and g.abs().sum() > 0 for g in b_grads)


def test_modules_to_save_train_the_tied_embedding_once_and_the_norms(tiny_model_dir):
    model = models.load_model(str(tiny_model_dir), CPU_MODEL_CONFIG, for_training=True)
    assert lora.ties_embeddings(model)  # the tiny model's head is its embedding matrix
    vocab, width = model.get_input_embeddings().weight.shape
    norms = [n for n, m in model.named_modules() if n.endswith("norm")]
    assert len(norms) == 2 * 2 + 1  # two per layer and the final one
    projections = [
        m.in_features + m.out_features for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in TARGETS
    ]
    model = lora.wrap(model.train(), {**lora_defaults(), **LORA, "modules_to_save": SAVE}, seed=0)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    # the memory the docs count: adapters r(in + out) each, V·d once for the tied pair, d per norm
    assert sum(p.numel() for p in trainable.values()) == 4 * sum(projections) + vocab * width + 5 * width
    inner = model.get_base_model()
    head, embedding = inner.get_output_embeddings(), inner.get_input_embeddings()
    assert head.weight.requires_grad and head.weight is embedding.weight  # still one matrix

    with pytest.raises(ValueError, match=r"train\.lora\.modules_to_save.*'scale'"):
        lora.wrap(
            models.load_model(str(tiny_model_dir), CPU_MODEL_CONFIG),
            {**lora_defaults(), **LORA, "modules_to_save": ["scale"]},
            seed=0,
        )


def test_a_lora_iteration_with_modules_to_save_trains_them_and_keeps_the_head_tied(trained, tiny_model_dir):
    out = trained("lora-save")
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert after.keys() == before.keys()  # still one stored matrix for embedding and head
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is True
    for key in before:
        assert not torch.equal(after[key], before[key]), key  # adapters merged, the rest trained whole
    adapter = load_file(out / lora.ADAPTER_DIR / "adapter_model.safetensors")
    saved = {k.removeprefix("base_model.model.") for k in adapter if ".lora_" not in k}
    # peft stores the tied head beside the embedding: the same trained matrix
    assert saved == {k for k in before if "norm" in k or "embed_tokens" in k} | {"lm_head.weight"}
    for key in saved:
        merged = after[key if key != "lm_head.weight" else "model.embed_tokens.weight"]
        torch.testing.assert_close(merged, adapter[f"base_model.model.{key}"], rtol=0, atol=0)


def test_a_lora_iteration_changes_only_the_target_weights_by_the_adapter(trained, tiny_model_dir):
    out = trained("lora")
    adapter = load_file(out / lora.ADAPTER_DIR / "adapter_model.safetensors")
    adapter_config = json.loads((out / lora.ADAPTER_DIR / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_model_dir)
    assert (adapter_config["r"], adapter_config["lora_alpha"]) == (4, 8)
    assert adapter and all(".lora_A." in key or ".lora_B." in key for key in adapter)
    assert not (out / lora.ADAPTER_DIR / "README.md").exists()

    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert after.keys() == before.keys()  # a plain model: no adapter tensors, nothing renamed
    changed = 0
    for key, weight in before.items():
        module = key.removesuffix(".weight")
        if module.rsplit(".", 1)[-1] not in TARGETS:
            assert torch.equal(after[key], weight), key  # embeddings, norms, head: untouched
            continue
        a = adapter[f"base_model.model.{module}.lora_A.weight"]
        b = adapter[f"base_model.model.{module}.lora_B.weight"]
        # W' = W + (alpha / rank) · B · A
        torch.testing.assert_close(after[key], weight + 2.0 * b @ a, rtol=0, atol=1e-6)
        changed += bool(b.abs().sum() > 0)
    assert changed == 2 * 7  # every adapter trained


@pytest.mark.parametrize("variant", ["lora", "lora-save"])
def test_merged_policy_gives_the_adapter_models_logps(trained, tiny_model_dir, tiny_pairs, variant):
    from peft import PeftModel

    out = trained(variant)
    base = models.load_model(str(tiny_model_dir), CPU_MODEL_CONFIG)
    pairs = batch(tiny_model_dir, tiny_pairs)
    with torch.no_grad():
        base_logps = response_logps(base, pairs, None)
        adapted = response_logps(PeftModel.from_pretrained(base, out / lora.ADAPTER_DIR).eval(), pairs, None)
        merged = response_logps(models.load_model(str(out), CPU_MODEL_CONFIG), pairs, None)
    # float32 sums over up to 50 tokens: merging reorders the arithmetic, within 1e-4 nats
    torch.testing.assert_close(merged, adapted, rtol=0, atol=1e-4)
    assert (merged - base_logps).abs().max() > 1.0  # training moved them far beyond the tolerance


def update(trained_dir, base_dir) -> torch.Tensor:
    """π_1 − π_0, all weights in one vector."""
    before, after = load_file(base_dir / "model.safetensors"), load_file(trained_dir / "model.safetensors")
    return torch.cat([(after[k] - before[k]).flatten() for k in sorted(before)])


def test_gradient_checkpointing_changes_nothing_with_lora(trained, tiny_model_dir):
    plain, checkpointed = (update(trained(name), tiny_model_dir) for name in ("lora", "lora-checkpointing"))
    assert plain.abs().max() > 0
    torch.testing.assert_close(checkpointed, plain, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_bf16_with_checkpointing_moves_the_weights_as_float32_does(trained, tiny_model_dir, kind):
    reference = update(trained(kind), tiny_model_dir)
    bf16 = update(trained(f"{kind}-checkpointing-bf16"), tiny_model_dir)
    assert bf16.abs().max() > 0
    # bfloat16 autocast rounds the forward pass; the update keeps its direction
    assert torch.nn.functional.cosine_similarity(bf16, reference, dim=0) > 0.9


def test_lora_settings_are_validated():
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert validate(base)["train"]["lora"] == {
        "enabled": False,
        "rank": 16,
        "alpha": 32,
        "dropout": 0.0,
        "target_modules": list(TARGETS),
        "modules_to_save": [],
    }
    bad = [
        ({"lora": {"enabled": True}, "deepspeed": "config/deepspeed/zero3.json"}, "train.lora.enabled"),
        ({"lora": {"target_modules": []}}, "train.lora.target_modules"),
        ({"lora": {"rank": 0}}, "train.lora.rank"),
        ({"lora": {"dropout": 1.0}}, "train.lora.dropout"),
        ({"lora": {"ranks": 8}}, "train.lora.ranks"),
        ({"lora": {"modules_to_save": ["norm", "norm"]}}, "train.lora.modules_to_save"),
    ]
    for train, key in bad:
        config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        config["train"].update(train)
        with pytest.raises(ConfigError, match=rf"config key {key}"):
            validate(config)


def run_lora_iter3(directory: Path) -> Path:
    """The default iter3 again with LoRA, from a copy of the shared run (started with the session, in
    the heavy lane: conftest). LoRA retrains from π_1 on; the iter1 data and π_0's answers stay."""
    run = finished_copy(directory / "run")
    lora_section = {"enabled": True, "modules_to_save": ["embed_tokens", "norm"]}
    write_config(run, {"train": {"lora": lora_section, "learning_rate": 3e-3}})
    snakemake(run, "iter3", cores=1)
    return run


@pytest.mark.early.with_args(run_lora_iter3, lane="heavy")
def test_iter3_with_lora_and_the_embedding_and_norms_trained_raises_the_win_rate_clearly(finished_run):
    """The default iter3 with LoRA (rank 16, alpha 32) and the tied embedding/head and the norms trained
    whole (train.lora.modules_to_save), at 3× the full fine-tune's learning rate. Measured (README,
    Single-GPU recipes; AMD EPYC, 2 cores): π_1…π_3 won 0.754 [0.723, 0.784], 0.809 [0.741, 0.872],
    0.907 [0.886, 0.924], as the full fine-tune (0.79, 0.89, 0.91). Adapters on the projections alone
    (rank 64, 3e-3) won only 0.55, 0.53, 0.55, and π_3's interval began at 0.511 on one CPU and at
    0.495 on an Intel Xeon: sampling from slightly different floats diverges, so a run on another CPU
    is another draw, its intervals ±0.03 to ±0.07 wide. The bounds sit 0.12 or more under the measured
    figures (about two of the widest half-widths, four of the others) and still well above 0.5."""
    run = early_result(run_lora_iter3, "heavy")
    m = {t: json.loads((run / f"results/iter{t}/evaluate/metrics.json").read_text()) for t in range(4)}
    assert all(m[t]["win_rate_ci95"][0] > 0.6 for t in (1, 2, 3)), m
    assert m[3]["win_rate"] > 0.75, m[3]
    shared = json.loads((finished_run / "results/iter0/evaluate/metrics.json").read_text())
    assert m[0] == shared  # π_0's evaluation is the shared run's, not made again
    for t in (1, 2, 3):
        assert (run / f"results/iter{t}/model" / lora.ADAPTER_DIR / "adapter_model.safetensors").is_file()
