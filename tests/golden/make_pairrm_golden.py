"""Golden PairRM scores from llm-blender itself under transformers 4.57.6 (tests/golden/pairrm_scores.json).

llm-blender 0.0.2 was written for transformers 4, where it runs unpatched. This script records what
its own ``Blender.rank(prompts, candidates, return_scores=True, batch_size=1)`` (the SPPO authors'
call) gives on two checkpoints that :func:`sppo.judges.tiny.build_tiny_pairrm` builds (weights from a
seed, identical under transformers 4 and 5; their sha256 is recorded and checked by the tests):

* ``tiny``: the test suite's DeBERTa-v2 of hidden 32, limits 48/24 tokens;
* ``small``: a DeBERTa-v2 of 3.5M parameters (hidden 256, 4 layers) at PairRM's real limits, 1224
  prompt tokens and 412 per response.

Both use prompts and responses longer than those limits, so both truncations happen. Run it in a
throwaway venv pinned to transformers 4 (nothing from the project's venv), from the repo root:

    python3 -m venv /tmp/golden && /tmp/golden/bin/pip install torch==2.13.0 transformers==4.57.6 \\
        tokenizers==0.22.2 huggingface-hub==0.36.2 safetensors==0.8.0 llm-blender==0.0.2 numpy==2.4.6
    PYTHONPATH=. /tmp/golden/bin/python tests/golden/make_pairrm_golden.py

tests/test_judges_pairrm_golden.py holds PairRMJudge and ``Blender.rank`` (with
:mod:`sppo.judges.pairrm_compat` applied) to these scores under the project's transformers 5.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers

from sppo.judges.tiny import _WORDS, SMALL, TINY, build_tiny_pairrm

OUT = Path(__file__).with_name("pairrm_scores.json")
# Outside the vocabulary, or changed by normalization (NFKC, whitespace): ligatures, full-width letters,
# no-break spaces, tabs, runs of spaces; and [SEP], which the collator replaces by a space.
EXTRA = ["Zürich", "naïve", "東京", "🙂", "[SEP]", "42,", "x-y;", "(z)?", "ﬁne", "Ｚ", "a\u00a0b", "\t", "  "]


def text(rng: random.Random, words: int) -> str:
    """``words`` words, mostly from the tiny vocabulary, with :data:`EXTRA` and line breaks among them."""
    pool = _WORDS * 4 + EXTRA + ["\n"]
    return " ".join(rng.choice(pool) for _ in range(words)).replace(" \n ", "\n")


def case(name: str, size: dict, limits: tuple[int, int], lengths: list, k: int, seed: int) -> dict:
    """Prompts of the given word counts, each with k responses of random lengths up to 3× the limit."""
    rng = random.Random(seed)
    source_max, candidate_max = limits
    prompts = [text(rng, n) for n in lengths]
    candidates = [[text(rng, rng.randint(0, 3 * candidate_max)) for _ in range(k)] for _ in prompts]
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = build_tiny_pairrm(Path(tmp) / name, seed=seed, size=size)
        weights = hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
        from llm_blender import Blender, BlenderConfig

        blender = Blender(BlenderConfig(device="cpu", use_tqdm=False))
        blender.loadranker(
            str(checkpoint), device="cpu", source_maxlength=source_max, candidate_maxlength=candidate_max
        )
        scores = blender.rank(prompts, candidates, return_scores=True, batch_size=1, disable_tqdm=True)
    scores = np.asarray(scores)
    assert scores.dtype == np.float32 and np.ptp(scores, axis=1).max() > 0.01, "scores must not all tie"
    return {
        "name": name,
        "seed": seed,
        "size": size,
        "source_max_length": source_max,
        "candidate_max_length": candidate_max,
        "weights_sha256": weights,
        "prompts": prompts,
        "candidates": candidates,
        "scores": scores.tolist(),
    }


def main() -> None:
    if transformers.__version__ != "4.57.6":
        sys.exit(f"run this under transformers 4.57.6, not {transformers.__version__} (see the docstring)")
    torch.set_num_threads(2)
    cases = [
        case("tiny", TINY, (48, 24), [0, 3, 10, 30, 45, 80], k=5, seed=1),
        case("small", SMALL, (1224, 412), [5, 300, 1100, 1500], k=3, seed=2),
    ]
    versions = {m.__name__: m.__version__ for m in (torch, transformers, np)}
    versions["llm-blender"] = "0.0.2"
    made_by = "tests/golden/make_pairrm_golden.py: llm-blender's Blender.rank(batch_size=1)"
    OUT.write_text(json.dumps({"made_by": made_by, "versions": versions, "cases": cases}, indent=1) + "\n")
    print(f"wrote {OUT}: " + ", ".join(f"{c['name']} {np.shape(c['scores'])}" for c in cases))


if __name__ == "__main__":
    main()
