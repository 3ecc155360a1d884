"""PairRM under transformers 5 scores exactly as llm-blender did under transformers 4.57.6.

tests/golden/pairrm_scores.json holds what llm-blender's own ``Blender.rank(..., return_scores=True,
batch_size=1)`` gave under transformers 4.57.6 (made by tests/golden/make_pairrm_golden.py, in a
throwaway venv), on a tiny checkpoint and on a 3.5M-parameter one at PairRM's real limits, with both
truncations hit. Here, under the project's transformers 5, the same checkpoints are rebuilt (same
sha256), and both the project's judge and ``Blender.rank`` itself, with sppo.judges.pairrm_compat's
fixes, must give those scores to 1e-6.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from sppo.judges import pairrm_compat  # noqa: E402
from sppo.judges.pairrm import PairRMJudge  # noqa: E402
from sppo.judges.tiny import build_tiny_pairrm  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "golden" / "pairrm_scores.json").read_text())
CASES = {case["name"]: case for case in GOLDEN["cases"]}
TOLERANCE = 1e-6


def test_golden_scores_come_from_transformers_4():
    assert GOLDEN["versions"]["transformers"] == "4.57.6"
    assert transformers.__version__.startswith("5.")  # this suite runs the other major version


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    """A golden case with its checkpoint rebuilt here (the weights must be the very same bytes)."""
    golden = CASES[request.param]
    out = tmp_path_factory.mktemp(golden["name"])
    path = build_tiny_pairrm(out, seed=golden["seed"], size=golden["size"])
    weights = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert weights == golden["weights_sha256"], "the rebuilt checkpoint differs from the golden one"
    return golden, path


def _limits(golden: dict) -> dict:
    return {k: golden[k] for k in ("source_max_length", "candidate_max_length")}


# batch_size 1 runs each pair alone, as the golden call did: the same arithmetic, so equal to float
# rounding (1.2e-7 seen). The default batching pads pairs to a common length, which changes float32
# summation order inside the network (3.6e-6 seen on scores up to 3.5 at 2,000-token pairs).
@pytest.mark.parametrize(("batching", "tolerance"), [({"batch_size": 1}, TOLERANCE), ({}, 1e-5)])
def test_judge_matches_llm_blender_under_transformers_4(case, batching, tolerance):
    golden, path = case
    judge = PairRMJudge(str(path), device="cpu", **_limits(golden), **batching)
    scores = judge.judge(golden["prompts"], golden["candidates"]).scores
    assert np.abs(scores - np.array(golden["scores"])).max() <= tolerance


def test_truncation_limits_are_hit(case):
    golden, path = case
    judge = PairRMJudge(str(path), device="cpu", **_limits(golden))
    cut = judge.encode(golden["prompts"], golden["candidates"])[2]
    assert cut["prompts"] >= 1 and cut["responses"] >= 1


def test_blender_rank_with_the_compat_layer_matches(case):
    golden, path = case
    pairrm_compat.apply()
    from llm_blender import Blender, BlenderConfig

    blender = Blender(BlenderConfig(device="cpu", use_tqdm=False))
    blender.loadranker(
        str(path),
        device="cpu",
        source_maxlength=golden["source_max_length"],
        candidate_maxlength=golden["candidate_max_length"],
    )
    assert next(blender.ranker.parameters()).dtype == torch.float32
    scores = blender.rank(
        golden["prompts"], golden["candidates"], return_scores=True, batch_size=1, disable_tqdm=True
    )
    assert np.abs(scores - np.array(golden["scores"])).max() <= TOLERANCE


def test_without_the_dtype_fix_the_backbone_would_load_in_float16(case):
    """The third fix matters: transformers 5 loads the (float16-stored) backbone in float16 by default."""
    _, path = case
    pairrm_compat.apply()
    from llm_blender.pair_ranker import model_util

    original = model_util.build_pretrained_model.__wrapped__
    backbone = str(path / "backbone")
    assert original("deberta", backbone).dtype == torch.float16
    assert model_util.build_pretrained_model("deberta", backbone).dtype == torch.float32
