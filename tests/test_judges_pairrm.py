"""PairRMJudge against llm-blender itself, on a tiny PairRM checkpoint built offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sppo.judges import load_judge  # noqa: E402
from sppo.judges.pairrm import PairRMJudge, pair_batches  # noqa: E402
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


@pytest.mark.parametrize(
    "batch", [{"batch_size": 1}, {"batch_size": 1000, "batch_tokens": 64}, {"batch_tokens": 1}]
)
def test_batching_does_not_change_scores(checkpoint, judgement, batch):
    other = PairRMJudge(str(checkpoint), **batch, **SETTINGS).judge(PROMPTS, CANDIDATES)
    assert np.abs(other.logits - judgement.logits).max() <= 1e-5


# Inputs for the token-for-token comparison with llm-blender's collator: short and empty texts, a
# prompt beyond source_max_length, responses beyond their budget (which shrinks as the prompt grows),
# characters outside the tiny vocabulary, newlines and tabs, [SEP] and other special tokens in a text.
COLLATE_PROMPTS = [
    "",
    "what is it",
    " ".join(["the"] * 80),
    " ".join(["of"] * 40),  # 43 source tokens: the response budget drops to 24 + (48 − 43) // 2 = 26
    "Zürich, 東京 and emoji 🙂?\nline two\n\n\tindented",
    "a [SEP] b[SEP]c [CLS] d [PAD] e [MASK] f <|candidate|> g",
    "  leading and trailing spaces  ",
]
COLLATE_CANDIDATES = [
    ["", "x", " ".join(["and"] * 30), "it is", "not"],
    ["", "", "", "", ""],
    ["you can", " ".join(["of"] * 100), "a\nb", "\n", " "],
    [" ".join(["to"] * 23), " ".join(["to"] * 24), " ".join(["to"] * 40), "to", ""],
    ["naïve café", "日本語", "[SEP]", "[SEP][SEP] x [SEP]", "ok 🙂"],
    ["[CLS] it [SEP] is", "[UNK]", "[PAD] [PAD]", "[MASK]", "<|candidate|>"[:-1]],
    ["  ", "\t", "x y z " * 20, "what", "is"],
]


@pytest.mark.parametrize("limits", [(48, 24), (1224, 412), (12, 3)])
def test_tokens_equal_llm_blender_collator(checkpoint, limits):
    """encode gives exactly the ids llm-blender's CrossCompareCollator makes for each prompt alone."""
    from llm_blender.blender.blender_utils import RankerDataset
    from llm_blender.pair_ranker.collator import CrossCompareCollator

    judge = PairRMJudge(
        str(checkpoint), device="cpu", source_max_length=limits[0], candidate_max_length=limits[1]
    )
    assert type(judge.collator) is CrossCompareCollator
    assert not judge.collator.mannually_add_sep_token  # the branch encode re-implements
    sources, responses, truncated = judge.encode(COLLATE_PROMPTS, COLLATE_CANDIDATES)
    dataset = RankerDataset(COLLATE_PROMPTS, COLLATE_CANDIDATES)
    cut = {"prompts": 0, "responses": 0}
    for n in range(len(dataset)):
        batch = judge.collator([dataset[n]])
        source_mask = batch["source_attention_mask"][0].bool()
        assert sources[n] == batch["source_ids"][0][source_mask].tolist()
        for i, (ids, mask) in enumerate(
            zip(batch["candidate_ids"][0], batch["candidate_attention_mask"][0], strict=True)
        ):
            assert responses[n][i] == ids[mask.bool()].tolist(), (n, i)
        full = judge.tokenizer(judge.collator.source_prefix + COLLATE_PROMPTS[n].replace("[SEP]", " "))
        cut["prompts"] += len(full["input_ids"]) > len(sources[n])
        for i, y in enumerate(COLLATE_CANDIDATES[n]):
            full = judge.tokenizer(judge.collator.candidate_prefix + y.replace("[SEP]", " "))
            cut["responses"] += len(full["input_ids"]) > len(responses[n][i])
    assert truncated == cut
    if limits == (48, 24):
        assert truncated == {"prompts": 1, "responses": 4}
        assert len(sources[3]) == 43 and [len(y) for y in responses[3]] == [26, 26, 26, 4, 3]
    if limits == (1224, 412):
        assert truncated == {"prompts": 0, "responses": 0}


@pytest.mark.parametrize("token", ["<|source|>", "<|candidate1|>", "<|candidate2|>", "<|candidate|>"])
def test_prefix_tokens_in_responses_are_replaced(judge, blender, token):
    """llm-blender crashes on its own prefix tokens in a text; the judge reads them as a space."""
    prompts, candidates = ["what is it"], [["it is", f"a {token} b", "not"]]
    with pytest.raises(RuntimeError):
        blender.rank(prompts, candidates, return_scores=True, batch_size=1, disable_tqdm=True)
    judgement = judge.judge(prompts, candidates)
    assert judgement.truncated["prefix_tokens_replaced"] == 1
    expected = blender.rank(prompts, [["it is", "a   b", "not"]], return_scores=True, batch_size=1)
    assert np.abs(judgement.scores - expected).max() <= 1e-5


def test_prefix_tokens_in_prompts_are_replaced(judge, blender):
    with pytest.raises(RuntimeError):
        blender.rank(["x <|source|> y"], [["a", "b"]], return_scores=True, batch_size=1, disable_tqdm=True)
    judgement = judge.judge(["x <|source|> y", "x <|candidate|> y"], [["a", "b"], ["a", "b"]])
    assert judgement.truncated["prefix_tokens_replaced"] == 1  # <|candidate|> in a prompt is harmless
    expected = blender.rank(
        ["x   y", "x <|candidate|> y"], [["a", "b"], ["a", "b"]], return_scores=True, batch_size=1
    )
    assert np.abs(judgement.scores - expected).max() <= 1e-5


def test_pair_batches_cover_every_pair_within_limits():
    rng = np.random.default_rng(0)
    sources = [[1] * int(n) for n in rng.integers(3, 40, size=6)]
    responses = [[[2] * int(n) for n in rng.integers(3, 60, size=4)] for _ in sources]
    lengths = {
        (n, i, j): len(sources[n]) + len(responses[n][i]) + len(responses[n][j])
        for n in range(6)
        for i in range(4)
        for j in range(4)
        if i != j
    }
    batches = pair_batches(sources, responses, batch_size=5, batch_tokens=300)
    seen = [tuple(int(x) for x in pair) for batch in batches for pair in batch]
    assert sorted(seen) == sorted(lengths)
    assert [lengths[p] for p in seen] == sorted(lengths.values())  # sorted by joined length
    for batch in batches:
        longest = max(lengths[tuple(int(x) for x in pair)] for pair in batch)
        assert len(batch) <= 5 and (len(batch) == 1 or len(batch) * longest <= 300)
    assert any(len(b) == 5 for b in batches) and any(1 < len(b) < 5 for b in batches)


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
    for name in [
        "model.safetensors",
        "backbone/model.safetensors",
        "backbone/spm.model",
        "backbone/tokenizer_config.json",
    ]:
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
    with pytest.raises(ValueError, match="batch_tokens"):
        PairRMJudge(str(checkpoint), batch_tokens=0)


def test_half_precision_runs_close_to_float32(checkpoint, judgement):
    judge = PairRMJudge(str(checkpoint), dtype="bfloat16", **SETTINGS)
    assert next(judge.ranker.parameters()).dtype == torch.bfloat16
    assert np.abs(judge.judge(PROMPTS, CANDIDATES).scores - judgement.scores).max() < 0.05


def test_marker_tokens_left_in_the_ids_are_refused(judge):
    """Were a tokenizer to make a marker token out of other characters, encode refuses the text."""
    t = judge.tokenizer
    ids = [t.cls_token_id, t.source_prefix_id, t.source_prefix_id, t.sep_token_id]
    with pytest.raises(ValueError, match="PairRM cannot read 'odd prompt'"):
        judge._check_markers(["odd prompt"], [ids], (1, None, 0, 0, 1))
    judge._check_markers(["fine"], [[t.cls_token_id, t.source_prefix_id, t.sep_token_id]], (1, None, 0, 0, 1))


def _cache_repo(cache, repo_id: str, files: dict, revision: str) -> Path:
    """Lay ``files`` (name → bytes) out as huggingface_hub's cache does: the snapshot folder of
    ``revision`` under models--owner--name, and refs/main naming it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture
def hub_cache(checkpoint, tmp_path, monkeypatch):
    """A hub cache holding the tiny PairRM as llm-blender/PairRM, whose config names its backbone by
    hub id (microsoft/deberta-v3-large, as the real one does), and that backbone; the hub offline."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    config = json.loads((checkpoint / "config.json").read_text())
    assert Path(config["model_name"]).is_dir()  # the tiny checkpoint names a local backbone
    config["model_name"] = "microsoft/deberta-v3-large"
    ranker = {"config.json": json.dumps(config).encode()}
    ranker["model.safetensors"] = (checkpoint / "model.safetensors").read_bytes()
    _cache_repo(cache, "llm-blender/PairRM", ranker, "a" * 40)
    backbone = {p.name: p.read_bytes() for p in (checkpoint / "backbone").iterdir() if p.is_file()}
    _cache_repo(cache, "microsoft/deberta-v3-large", backbone, "b" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def test_pairrm_and_its_backbone_load_offline_from_the_hub_cache(hub_cache, judgement):
    judge = PairRMJudge("llm-blender/PairRM", batch_size=7, **SETTINGS)  # as the fixture judge
    assert judge.checkpoint == hub_cache / "models--llm-blender--PairRM" / "snapshots" / ("a" * 40)
    assert judge.identity()["backbone"] == "microsoft/deberta-v3-large"
    from sppo import hub

    read = hub.snapshots_read()  # what the job's provenance record names
    assert read["llm-blender/PairRM"] == "a" * 40 and read["microsoft/deberta-v3-large"] == "b" * 40
    again = judge.judge(PROMPTS, CANDIDATES)
    assert np.array_equal(again.scores, judgement.scores)  # the same weights and tokenizer: exact


def test_backbone_missing_from_the_hub_cache_offline_is_named(hub_cache):
    shutil.rmtree(hub_cache / "models--microsoft--deberta-v3-large")
    with pytest.raises(FileNotFoundError, match=r"'microsoft/deberta-v3-large' is not in the .* hub cache"):
        PairRMJudge("llm-blender/PairRM", **SETTINGS)


def test_fetch_follows_pairrm_to_its_backbone(hub_cache):
    """The fetch of llm-blender/PairRM also fetches the backbone its config.json names, and records the
    commit of each (here from the cache: the hub is offline)."""
    from sppo import fetch, hub

    def from_cache(item):
        return hub.snapshot(item["repo_id"], item["revision"], repo_type=item["repo_type"])

    item = {"repo_id": "llm-blender/PairRM", "repo_type": "model", "revision": None}
    item["why"] = "judge.pairrm.path"
    records = fetch.fetch([item], download=from_cache)
    assert [(r["repo_id"], r["why"], r["commit"]) for r in records] == [
        ("llm-blender/PairRM", "judge.pairrm.path", "a" * 40),
        ("microsoft/deberta-v3-large", "judge.pairrm.path → backbone", "b" * 40),
    ]
