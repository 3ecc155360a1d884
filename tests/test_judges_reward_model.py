"""RewardModelJudge on a tiny Llama reward model built offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sppo.judges import load_judge  # noqa: E402
from sppo.judges.reward_model import RewardModelJudge  # noqa: E402
from sppo.judges.tiny import build_tiny_reward_model  # noqa: E402

LONG_RESPONSE = " ".join(["the"] * 60)  # 60 tokens of the tiny vocabulary
PROMPTS = ["what is it", "", "how can you be that"]
CANDIDATES = [
    ["it is", "", "a thing that is", "Zap 42!"],
    ["the", "and", "to be or not to be", ""],
    ["you can", LONG_RESPONSE, "as it is", "this is what"],
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("rm"))


@pytest.fixture(scope="module")
def judge(checkpoint):
    return RewardModelJudge(str(checkpoint), device="cpu", batch_size=5, max_length=40)


@pytest.fixture(scope="module")
def judgement(judge):
    return judge.judge(PROMPTS, CANDIDATES)


def direct_rewards(checkpoint, texts_or_ids, max_length=40) -> np.ndarray:
    """r for each input by a plain forward pass of the model, one input at a time."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    rewards = []
    with torch.no_grad():
        for ids in texts_or_ids:
            rewards.append(model(input_ids=torch.tensor([ids[:max_length]])).logits[0, 0].item())
    return np.array(rewards).reshape(len(PROMPTS), -1)


def test_matches_direct_forward_with_chat_template(checkpoint, judgement):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    ids = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": x}, {"role": "assistant", "content": y}], return_dict=True
        )["input_ids"]
        for x, row in zip(PROMPTS, CANDIDATES, strict=True)
        for y in row
    ]
    r = direct_rewards(checkpoint, ids)
    np.testing.assert_allclose(judgement.logits, r[:, :, None] - r[:, None, :], atol=1e-5)
    assert np.ptp(r, axis=1).min() > 1e-3  # the fixture's rewards are not ties


def test_logits_antisymmetric_and_scores_follow_rewards(judgement):
    m = judgement.logits
    np.testing.assert_array_equal(m, -np.swapaxes(m, 1, 2))
    rewards = m[:, :, 0] + m[:, 0:1, 0]  # r_i − r_0 plus a per-prompt constant keeps the order
    np.testing.assert_array_equal(np.argsort(judgement.scores, axis=1), np.argsort(rewards, axis=1))
    np.testing.assert_allclose(judgement.scores, (m - np.swapaxes(m, 1, 2)).mean(axis=2))


def test_truncation_counted_and_empty_responses_ranked(judgement):
    assert judgement.truncated == {"responses": 1}
    assert np.all(np.isfinite(judgement.scores))


def test_plain_text_without_chat_template(tmp_path):
    checkpoint = build_tiny_reward_model(tmp_path / "plain", chat_template=False)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    ids = [
        tokenizer(f"{x}\n\n{y}")["input_ids"] for x, row in zip(PROMPTS, CANDIDATES, strict=True) for y in row
    ]
    r = direct_rewards(checkpoint, ids)
    judgement = RewardModelJudge(str(checkpoint), device="cpu", max_length=40).judge(PROMPTS, CANDIDATES)
    np.testing.assert_allclose(judgement.logits, r[:, :, None] - r[:, None, :], atol=1e-5)


def test_identity_hashes_the_weights(judge, checkpoint):
    identity = judge.identity()
    expected = hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert identity["weights_sha256"] == expected
    assert identity["name"] == "reward_model" and identity["source"] == str(checkpoint)


def test_load_judge_builds_reward_model(checkpoint):
    config = {"train": "synthetic", "eval": "reward_model", "reward_model": {"path": str(checkpoint)}}
    assert isinstance(load_judge(config, "eval"), RewardModelJudge)


def test_missing_directory_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-rm"):
        RewardModelJudge(str(tmp_path / "no-such-rm"))


def test_directory_without_weights_names_the_path(checkpoint, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((checkpoint / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match=str(broken)):
        RewardModelJudge(str(broken))


def test_unknown_hub_id_offline_names_it(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="no-such-owner/no-such-rm"):
        RewardModelJudge("no-such-owner/no-such-rm")


def test_sharded_checkpoint_hashes_all_shards(checkpoint, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    sharded = tmp_path / "sharded"
    AutoModelForSequenceClassification.from_pretrained(checkpoint).save_pretrained(
        sharded, max_shard_size="100KB"
    )
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(sharded)
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert len(shards) > 1
    identity = RewardModelJudge(str(sharded), device="cpu").identity()
    assert identity["weights_file"] == "model.safetensors.index.json"
    assert identity["weights_sha256"] == hashlib.sha256(b"".join(p.read_bytes() for p in shards)).hexdigest()
