"""The offline default judge: a Bradley–Terry judge whose ground truth is known exactly.

The quality of a response y is the share of its characters that lie in a preferred set
(default: lowercase ASCII letters and the space), q(y) = |{c ∈ y : c ∈ preferred}| / |y|, and
q = 0 for an empty response. It is a mean, not a sum, so length alone earns nothing: a response
doubled in length keeps its quality. For a random tiny model it is a stand-in for fluency: such a
model emits punctuation, digits, capitals, control and replacement characters, and the judge
prefers the responses that read most like plain words.

The judge is a Bradley–Terry model on q with a sharpness λ:

    M[i, j] = λ (q_i − q_j),   P(i ≻ j) = σ(M[i, j]),

so the scores llm-blender would derive from M are s_i = mean_j (M[i, j] − M[j, i]) = 2λ (q_i − q̄).
"""

from __future__ import annotations

import numpy as np

from sppo.judges.base import Judge, Judgement, scores_from_logits

DEFAULT_PREFERRED = "abcdefghijklmnopqrstuvwxyz "


def quality(response: str, preferred: frozenset[str]) -> float:
    """q(y): the share of characters of ``response`` in ``preferred`` (0 for an empty response)."""
    if not response:
        return 0.0
    return sum(c in preferred for c in response) / len(response)


class SyntheticJudge(Judge):
    name = "synthetic"

    def __init__(self, sharpness: float = 10.0, preferred: str = DEFAULT_PREFERRED):
        if sharpness <= 0:
            raise ValueError(f"judge.synthetic.sharpness must be > 0, got {sharpness}")
        if not preferred:
            raise ValueError("judge.synthetic.preferred must name at least one character")
        self.sharpness = float(sharpness)
        self.preferred = frozenset(preferred)
        self._preferred_text = preferred

    def judge(self, prompts: list[str], candidates: list[list[str]]) -> Judgement:
        if len(prompts) != len(candidates):
            raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
        q = np.array([[quality(y, self.preferred) for y in row] for row in candidates], dtype=np.float64)
        q = q.reshape(len(candidates), -1)
        logits = self.sharpness * (q[:, :, None] - q[:, None, :])
        return Judgement(logits=logits, scores=scores_from_logits(logits))

    def identity(self) -> dict:
        return {"name": self.name, "sharpness": self.sharpness, "preferred": self._preferred_text}
