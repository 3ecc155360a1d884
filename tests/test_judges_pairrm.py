"""PairRMJudge against llm-blender itself, on a tiny PairRM checkpoint built offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sppo.judges import load_judge  # noqa: E402
from sppo.judges.pairrm import PairRMJudge  # noqa: E402
from sppo.judges.tiny import build_tiny_pairrm  # noqa: E402

# Small limits, so that truncation and the collator's length budget matter. Each listed word is one
# token of the tiny vocabulary; a source is [CLS] <|source|> words [SEP], a response likewise.
SETTINGS = {"device": "cpu", "source_max_length": 48, "candidate_max_length": 24}
LONG_PROMPT = " ".join(["the"] * 80)  # 83 tokens > 48
LONG_RESPONSE = " ".join(["of"] * 100)  # 103 tokens > 24 + (48 − 48) // 2 … 24 + (48 − 2) // 2
PROMPTS = ["what is it", LONG_PROMPT, "", "how can you be that", "Zap 42 the thing?"]
CANDIDATES = [
    ["it is", "", "a thing that is", "not", "what"],
    ["the", "and", "to be or not to be", "", "x y z"],
    ["", "", "", "", ""],
    ["you can", LONG_RESPONSE, "as it is", "this is what", "Hello!\nbye"],
    ["42", "the thing", "a b c d e f", "it", "ok"],
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_pairrm(tmp_path_factory.mktemp("pairrm"))


@pytest.fixture(scope="module")
def judge(checkpoint):
    return PairRMJudge(str(checkpoint), batch_size=7, **SETTINGS)


@pytest.fixture(scope="module")
def blender(checkpoint):
    from llm_blender import Blender, BlenderConfig

    blender = Blender(BlenderConfig(device="cpu", use_tqdm=False))
    blender.loadranker(str(checkpoint), device="cpu", source_maxlength=48, candidate_maxlength=24)
    return blender


@pytest.fixture(scope="module")
def judgement(judge):
    return judge.judge(PROMPTS, CANDIDATES)


def test_scores_equal_blender_rank_with_batch_size_1(judgement, blender):
    expected = blender.rank(PROMPTS, CANDIDATES, return_scores=True, batch_size=1, disable_tqdm=True)
    assert np.abs(judgement.scores - expected).max() <= 1e-5
    assert np.ptp(expected, axis=1).max() > 0.01  # the fixture's scores are not all ties


def test_matrix_equals_llm_blender_full_predict(judgement, blender):
    """M is llm-blender's own comparison matrix, both orders, with a zero diagonal."""
    from llm_blender.blender.blender_utils import RankerDataset

    dataset = RankerDataset(PROMPTS, CANDIDATES)
    for n in range(len(PROMPTS)):
        with torch.no_grad():
            batch = blender.ranker_collator([dataset[n]])
            expected = blender.ranker._full_predict(**{k: v for k, v in batch.items() if v is not None})[
                "logits"
            ]
        assert np.abs(judgement.logits[n] - expected[0].numpy()).max() <= 1e-5
    assert np.all(np.diagonal(judgement.logits, axis1=1, axis2=2) == 0)


def test_scores_are_mean_of_both_orders(judgement):
    m = judgement.logits
    np.testing.assert_allclose(judgement.scores, (m - np.swapaxes(m, 1, 2)).mean(axis=2), atol=1e-12)
    assert not np.allclose(m, -np.swapaxes(m, 1, 2))  # two forward passes, not one antisymmetric number


def test_truncation_counted(judgement):
    assert judgement.truncated == {"prompts": 1, "responses": 1}


def test_empty_responses_ranked(judgement):
    """All-empty candidates are identical inputs, so every pair logit is the same and every score 0."""
    assert np.all(np.isfinite(judgement.scores))
    np.testing.assert_allclose(judgement.scores[2], 0, atol=1e-6)


def test_batch_size_does_not_change_scores(checkpoint, judgement):
    other = PairRMJudge(str(checkpoint), batch_size=1, **SETTINGS).judge(PROMPTS, CANDIDATES)
    assert np.abs(other.logits - judgement.logits).max() <= 1e-5


def test_identity_hashes_the_weights(judge, checkpoint):
    identity = judge.identity()
    expected = hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert identity["weights_sha256"] == expected
    assert identity["name"] == "pairrm" and identity["source"] == str(checkpoint)
    assert identity["source_max_length"] == 48 and identity["dtype"] == "float32"


def test_load_judge_builds_pairrm(checkpoint):
    config = {"train": "pairrm", "eval": "synthetic", "pairrm": {"path": str(checkpoint), "batch_size": 4}}
    assert isinstance(load_judge(config, "train"), PairRMJudge)


def test_tiny_pairrm_is_bit_reproducible(checkpoint, tmp_path):
    again = build_tiny_pairrm(tmp_path / "again")
    for name in ["model.safetensors", "backbone/model.safetensors", "backbone/tokenizer.json"]:
        assert (again / name).read_bytes() == (checkpoint / name).read_bytes(), name


def test_missing_directory_names_the_path(tmp_path):
    missing = tmp_path / "no-such-pairrm"
    with pytest.raises(FileNotFoundError, match="no-such-pairrm"):
        PairRMJudge(str(missing))


@pytest.mark.parametrize("remove", ["config.json", "model.safetensors"])
def test_incomplete_directory_names_the_path(checkpoint, tmp_path, remove):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ["config.json", "model.safetensors"]:
        if name != remove:
            (broken / name).write_bytes((checkpoint / name).read_bytes())
    with pytest.raises(FileNotFoundError, match=str(broken)):
        PairRMJudge(str(broken))


def test_unknown_hub_id_offline_names_it(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="no-such-owner/no-such-pairrm"):
        PairRMJudge("no-such-owner/no-such-pairrm")


def test_bad_settings_fail_early(checkpoint):
    with pytest.raises(ValueError, match="dtype"):
        PairRMJudge(str(checkpoint), dtype="float64")
    with pytest.raises(ValueError, match="batch_size"):
        PairRMJudge(str(checkpoint), batch_size=0)


def test_half_precision_runs_close_to_float32(checkpoint, judgement):
    judge = PairRMJudge(str(checkpoint), dtype="bfloat16", **SETTINGS)
    assert next(judge.ranker.parameters()).dtype == torch.bfloat16
    assert np.abs(judge.judge(PROMPTS, CANDIDATES).scores - judgement.scores).max() < 0.05
