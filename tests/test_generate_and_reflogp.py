"""Sampling is seeded per sample and independent of sharding; reference log-probs match training's."""

import pytest
import torch
from conftest import CPU_MODEL_CONFIG, REPO, TINY_MODEL

from sppo import basemodel, generate, logprobs, models, reflogp, split, train

MODEL_CONFIG = CPU_MODEL_CONFIG
SETTINGS = {
    "k": 3,
    "temperature": 0.7,
    "top_p": 0.9,
    "max_new_tokens": 8,
    "batch_size": 2,
    "sample_seeds": None,
}


def prompts(n):
    return split.rows([f"Tell me fact number {i} about rivers." for i in range(n)])


def test_shards_cover_whole_batches():
    rows = prompts(7)
    shards = [generate.shard_rows(rows, s, 3, batch_size=2) for s in range(3)]
    assert [[b for b, _ in shard] for shard in shards] == [[0, 1], [2], [3]]
    assert [r for shard in shards for _, batch in shard for r in batch] == rows


def test_reference_sample_seeds():
    assert generate.sample_seeds({"k": 5, "sample_seeds": None}) == [0, 50, 100, 150, 200]
    assert generate.sample_seeds({"k": 2, "sample_seeds": [7, 9]}) == [7, 9]


@pytest.fixture(scope="module", params=["llama", "gemma2"])
def policy_dir(request, tiny_model_dir, tmp_path_factory):
    """The tiny Llama, and a tiny Gemma-2 built by the basemodel stage the same way."""
    if request.param == "llama":
        return tiny_model_dir
    out = tmp_path_factory.mktemp("gemma2") / "model"
    prompts_ = split.read_local(REPO / "data" / "prompts.jsonl", "prompt")
    basemodel.build(prompts_, {**TINY_MODEL, "architecture": "gemma2"}, seed=0, out_dir=out)
    assert models.load_model(str(out), MODEL_CONFIG).config.model_type == "gemma2"
    return out


def test_generation_is_deterministic_and_shard_independent(policy_dir):
    model, tokenizer = models.load_policy(str(policy_dir), MODEL_CONFIG)
    rows = prompts(5)
    whole = generate.generate_shard(model, tokenizer, generate.shard_rows(rows, 0, 1, 2), SETTINGS)
    sharded = [
        row
        for s in range(2)
        for row in generate.generate_shard(model, tokenizer, generate.shard_rows(rows, s, 2, 2), SETTINGS)
    ]
    assert whole == sharded
    assert [r["id"] for r in whole] == [r["id"] for r in rows]
    assert all(len(r["responses"]) == 3 for r in whole)
    # distinct seeds give distinct samples (a random tiny model almost never repeats itself)
    assert len({y for r in whole for y in r["responses"]}) > len(whole)
    reseeded = generate.generate_shard(
        model, tokenizer, generate.shard_rows(rows, 0, 1, 2), {**SETTINGS, "sample_seeds": [1, 2, 3]}
    )
    assert reseeded != whole


LIMITS = {"max_length": 64, "max_prompt_length": 32, "truncation": "response", "responses": "pair"}


def pair_rows(n):
    """``n`` winprob pairs: the chosen response of row i is "yes " i times, the rejected one empty."""
    return [
        {
            "prompt": f"Question {i}?",
            "chosen": [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": "yes " * i},
            ],
            "rejected": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": ""}],
            "id": i,
            "chosen_probs": 0.6,
            "chosen_probs_win": 0.7,
            "chosen_probs_lose": 0.3,
        }
        for i in range(n)
    ]


def test_reference_logps_do_not_depend_on_the_shard_count(policy_dir):
    """Shards of whole batches: 1 and 3 shards give the same rows, bit for bit, in the same order."""
    model, tokenizer = models.load_policy(str(policy_dir), MODEL_CONFIG)
    rows = pair_rows(7)  # 4 batches of 2: shards of 2, 1 and 1 batches

    def sharded(n):
        shards = [reflogp.shard_rows(rows, s, n, 2) for s in range(n)]
        return shards, [reflogp.compute(model, tokenizer, shard, **LIMITS, batch_size=2) for shard in shards]

    (whole,), (one,) = sharded(1)
    parts, three = sharded(3)
    assert [[r["id"] for r in part] for part in parts] == [[0, 1, 2, 3], [4, 5], [6]]
    assert whole == rows and reflogp.merge(rows, [one]) == reflogp.merge(rows, three)
    assert all(len(r["ref_logps"]) == 2 for r in one)
    with pytest.raises(ValueError, match="3 reference log-prob shards hold 8 rows, not the 7 pairs"):
        reflogp.merge(rows, [three[0], three[1], three[1]])  # shard 2 missing, shard 1 twice
    with pytest.raises(ValueError, match="no reference log-probs"):
        reflogp.merge(rows, [rows])


def test_reference_logps_equal_policy_logps_at_step_zero(policy_dir):
    """r_w = log πθ − log π_ref is 0 before training: the reflogp stage and training count the same tokens."""
    model, tokenizer = models.load_policy(str(policy_dir), MODEL_CONFIG)
    with_ref = reflogp.compute(model, tokenizer, pair_rows(5), **LIMITS, batch_size=4)
    batch = train.GroupCollator(tokenizer.pad_token_id)(train.examples(tokenizer, with_ref, LIMITS))
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps = logprobs.sequence_logps(logits, batch["labels"]).double()
    assert torch.allclose(logps.view(2, 5).T, batch["ref_logps"], atol=1e-4)
    assert all(r["ref_logps"][0] < 0 for r in with_ref)


def test_sequence_logps_counts_only_labelled_tokens():
    # vocabulary of 2, uniform logits: every counted token has log-prob log(1/2)
    logits = torch.zeros(1, 5, 2)
    labels = torch.tensor([[logprobs.IGNORE, logprobs.IGNORE, 1, 0, logprobs.IGNORE]])
    assert torch.allclose(
        logprobs.sequence_logps(logits, labels), torch.tensor([2 * torch.log(torch.tensor(0.5))])
    )
