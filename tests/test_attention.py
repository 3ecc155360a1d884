"""Gemma-2's attention soft-capping is applied wherever the policy runs under transformers.

transformers 5 loads Gemma-2 with sdpa by default, and sdpa ignores ``attn_logit_softcapping``;
model.attn_implementation auto loads such a model with eager attention, which applies it. On a tiny
Gemma-2 whose attention logits far exceed the cap (50), the log-probs of the reflogp stage, of the
training forward pass and of the model evaluation loads equal eager attention's and differ from sdpa's.
"""

import pytest
import torch
from conftest import CPU_MODEL_CONFIG, REPO, TINY_MODEL, train_settings

from sppo import basemodel, logprobs, models, reflogp, split, train
from sppo.imports import without_sklearn

with without_sklearn():
    from transformers import AutoModelForCausalLM

# Rows as the reflogp stage reads them: each pair's chosen and rejected responses of a few tokens.
ROWS = [
    {
        "id": i,
        "prompt": f"Question {i} about rivers?",
        "chosen": [
            {"role": "user", "content": f"Question {i} about rivers?"},
            {"role": "assistant", "content": "Rivers flow to the sea " * (i + 1)},
        ],
        "rejected": [
            {"role": "user", "content": f"Question {i} about rivers?"},
            {"role": "assistant", "content": "no " * (i + 2)},
        ],
        "chosen_probs": 0.6,
        "chosen_probs_win": 0.7,
        "chosen_probs_lose": 0.3,
    }
    for i in range(3)
]
LIMITS = {"max_length": 64, "max_prompt_length": 32, "truncation": "response", "responses": "pair"}
# float32 on CPU: the same attention implementation gives the same logits up to summation order
# (~1e-6 relative on sums of ~100 nats); sdpa, without the cap, is off by up to 2 nats here
SAME, DIFFERENT = 1e-4, 0.5


@pytest.fixture(scope="module")
def gemma2_dir(tmp_path_factory):
    """A tiny Gemma-2 (cap 50, as the real ones) whose query and key weights are scaled by 100
    (its attention scores by 10⁴), so that scores exceed the cap and capping changes the softmax."""
    out = tmp_path_factory.mktemp("gemma2") / "model"
    prompts = split.read_local(REPO / "data" / "prompts.jsonl", "prompt")
    basemodel.build(prompts, {**TINY_MODEL, "architecture": "gemma2"}, seed=0, out_dir=out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.attn_logit_softcapping == 50.0
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(100)
            layer.self_attn.k_proj.weight.mul_(100)
    model.save_pretrained(out)
    return out


def loaded_with(path, implementation: str):
    """The model loaded directly by transformers with the given attention implementation."""
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation=implementation).eval()


def pair_batch(path) -> dict:
    tokenizer = models.load_tokenizer(str(path), CPU_MODEL_CONFIG)
    groups, _ = logprobs.encode_rows(tokenizer, ROWS, *LIMITS.values())
    return logprobs.collate_groups(groups, tokenizer.pad_token_id)


@torch.no_grad()
def eager_and_sdpa_logps(path) -> tuple[torch.Tensor, torch.Tensor]:
    """The summed response log-probs of ROWS' pairs (chosen then rejected) under eager and sdpa."""
    batch = pair_batch(path)
    return tuple(logprobs.response_logps(loaded_with(path, impl), batch, None) for impl in ("eager", "sdpa"))


def test_auto_choice():
    gemma2 = basemodel.model_config({**TINY_MODEL, "architecture": "gemma2"}, _Tokenizer())
    llama = basemodel.model_config(TINY_MODEL, _Tokenizer())
    assert models.softcapping(gemma2) == 50.0 and models.softcapping(llama) is None
    assert models.attn_implementation(gemma2, "auto") == "eager"
    assert models.attn_implementation(llama, "auto") is None  # transformers' default (sdpa)
    gemma2.attn_logit_softcapping = None  # Gemma-2 with the cap switched off: nothing to honour
    assert models.attn_implementation(gemma2, "auto") is None
    for requested in ("sdpa", "eager", "flex_attention"):
        assert models.attn_implementation(llama, requested) == requested


class _Tokenizer:
    """What basemodel.model_config reads of a tokenizer."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __len__(self):
        return 300


def test_capping_matters_on_this_model(gemma2_dir):
    eager, sdpa = eager_and_sdpa_logps(gemma2_dir)
    assert (eager - sdpa).abs().max() > DIFFERENT
    assert (eager < 0).all()


def test_reflogp_uses_capped_attention(gemma2_dir):
    """The reflogp stage (scripts/reflogp.py: models.load_policy, reflogp.compute) gives eager's log-probs."""
    model, tokenizer = models.load_policy(str(gemma2_dir), CPU_MODEL_CONFIG)
    assert model.config._attn_implementation == "eager"
    rows = reflogp.compute(model, tokenizer, ROWS, **LIMITS, batch_size=2)
    ours = torch.tensor([r["ref_logps"] for r in rows]).T.reshape(-1)  # chosen…, rejected…
    eager, sdpa = eager_and_sdpa_logps(gemma2_dir)
    assert torch.allclose(ours, eager, rtol=0, atol=SAME)
    assert (ours - sdpa).abs().max() > DIFFERENT


def test_training_forward_uses_capped_attention(gemma2_dir, tmp_path):
    """The model train loads (for_training) and SPPOTrainer.compute_loss's log-probs are eager's, and
    so r = log πθ − log π_ref is 0 at the first step against the reflogp stage's π_ref."""
    model = models.load_model(str(gemma2_dir), CPU_MODEL_CONFIG, for_training=True)
    assert model.config._attn_implementation == "eager"
    settings = train_settings(**LIMITS, per_device_batch_size=3, global_batch_size=3, bf16=False)
    trainer = train.SPPOTrainer(
        model=model,
        args=train.arguments(settings, str(tmp_path), world_size=1, max_steps=1, seed=0),
        loss="sppo",
        eta=1.0,
        beta=0.1,
        ipo_normalize=False,
        schedule_steps=1,
    )
    policy, tokenizer = models.load_policy(str(gemma2_dir), CPU_MODEL_CONFIG)
    with_ref = reflogp.compute(policy, tokenizer, ROWS, **LIMITS, batch_size=3)
    batch = train.GroupCollator(tokenizer.pad_token_id)(train.examples(tokenizer, with_ref, LIMITS))
    model.train()
    _, outputs = trainer.compute_loss(model, batch, return_outputs=True)
    logps = outputs["logps"].detach()  # [prompts, (chosen, rejected)]
    eager, sdpa = eager_and_sdpa_logps(gemma2_dir)
    assert torch.allclose(logps.T.reshape(-1).float(), eager, rtol=0, atol=SAME)
    assert (logps.T.reshape(-1).float() - sdpa).abs().max() > DIFFERENT
    assert (logps - batch["ref_logps"]).abs().max() < SAME


def test_evaluation_loads_capped_attention(gemma2_dir):
    """scripts/evaluate_answers.py and scripts/leaderboard.py load through models.load_policy."""
    model, _ = models.load_policy(str(gemma2_dir), CPU_MODEL_CONFIG)
    batch = pair_batch(gemma2_dir)
    with torch.no_grad():
        ours = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        eager = loaded_with(gemma2_dir, "eager")(
            **{k: batch[k] for k in ("input_ids", "attention_mask")}
        ).logits
    assert torch.allclose(ours, eager, rtol=0, atol=SAME)


def test_override_is_honoured(gemma2_dir):
    """model.attn_implementation sdpa is a declared choice: loaded as asked, without the cap."""
    model = models.load_model(str(gemma2_dir), {**CPU_MODEL_CONFIG, "attn_implementation": "sdpa"})
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        ours = logprobs.response_logps(model, pair_batch(gemma2_dir), None)
    _, sdpa = eager_and_sdpa_logps(gemma2_dir)
    assert torch.allclose(ours, sdpa, rtol=0, atol=SAME)


def test_benchmark_runs_at_toy_shape():
    """benchmarks/attention.py's passes, in this process at a toy shape, so the code the README's
    figures come from cannot rot. At this init (weights N(0, 0.02)) scores stay far below the cap, so
    eager and sdpa agree: the same weights, float32 sums of ~300 nats within 1e-3."""
    from benchmarks import attention

    args = attention.parse_args(["--tiny", "--prompt-len=4", "--response-len=12", "--steps=1", "--warmup=0"])
    rows = [
        attention.run(attention.TINY, impl, kind, args)
        for kind in attention.PASSES
        for impl in attention.IMPLEMENTATIONS
    ]
    assert [(r["pass"], r["attention"]) for r in rows] == [
        ("reflogp", "eager"),
        ("reflogp", "sdpa"),
        ("train", "eager"),
        ("train", "sdpa"),
    ]
    assert all(r["seconds"] > 0 and r["peak_rss_mib"] > 0 and r["rss_before_mib"] > 0 for r in rows)
    sums = [r["logps_sum"] for r in rows]
    assert sums[0] < 0 and max(sums) - min(sums) < 1e-3
    assert "eager" in attention.table(rows) and "1.00x" in attention.table(rows)


def test_reward_model_judge_uses_capped_attention(gemma2_dir, tmp_path):
    """A Gemma-2 reward model (judge reward_model) loads with eager attention too: its rewards are
    eager's, not sdpa's. The tiny one: gemma2_dir's weights under a one-output classifier head."""
    from sppo.judges.reward_model import RewardModelJudge

    with without_sklearn():
        from transformers import AutoModelForSequenceClassification

    lm = loaded_with(gemma2_dir, "eager")
    lm.config.num_labels = 1
    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_config(lm.config)
    classifier.model.load_state_dict(lm.model.state_dict())
    classifier.save_pretrained(tmp_path / "rm")
    models.load_tokenizer(str(gemma2_dir), CPU_MODEL_CONFIG).save_pretrained(tmp_path / "rm")

    judge = RewardModelJudge(str(tmp_path / "rm"), device="cpu", batch_size=4, max_length=64)
    assert judge.model.config._attn_implementation == "eager"
    prompts = [row["prompt"] for row in ROWS]
    candidates = [[row["chosen"][1]["content"], row["rejected"][1]["content"]] for row in ROWS]
    ours = judge.judge(prompts, candidates).scores
    judge.model = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "rm", attn_implementation="sdpa"
    )
    judge.model.config.pad_token_id = judge.tokenizer.pad_token_id
    uncapped = judge.judge(prompts, candidates).scores
    judge.model = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "rm", attn_implementation="eager"
    )
    judge.model.config.pad_token_id = judge.tokenizer.pad_token_id
    eager = judge.judge(prompts, candidates).scores
    # scores 2(r_i − r̄) of about 0.1 here; without the cap they move by about 0.36
    assert abs(ours - eager).max() < SAME and abs(ours - uncapped).max() > 0.05
