"""The judge interface: what the rank and evaluate stages need from a preference model.

A judge looks at one prompt and its K candidate responses and returns

* ``logits``: a K×K matrix M with M[i, j] > 0 when response i beats response j (the diagonal is 0).
  It is kept in both orders, as PairRM computes it (M[i, j] and M[j, i] come from two separate
  forward passes and need not be exact negatives);
* ``scores``: one score per response, higher is better. For PairRM these are llm-blender's scores,
  s_i = mean_j (M[i, j] − M[j, i]).

Judges are built by :func:`sppo.judges.load_judge` from the ``judge`` section of the config.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Judgement:
    """The verdict on N prompts with K candidates each."""

    logits: np.ndarray  # (N, K, K) float64, logits[n, i, j] > 0: candidate i beats j
    scores: np.ndarray  # (N, K) float64, higher is better
    truncated: dict[str, int] = field(default_factory=dict)  # e.g. {"prompts": 3, "responses": 7}

    def __post_init__(self):
        n, k = self.scores.shape
        if self.logits.shape != (n, k, k):
            raise ValueError(f"logits shape {self.logits.shape} does not match scores {self.scores.shape}")


class Judge(abc.ABC):
    """A preference model over K responses to the same prompt."""

    name: str

    @abc.abstractmethod
    def judge(self, prompts: list[str], candidates: list[list[str]]) -> Judgement:
        """Compare the candidates of every prompt. All prompts have the same number K ≥ 2 of candidates."""

    @abc.abstractmethod
    def identity(self) -> dict:
        """What this judge is: at least ``name``; for model judges ``source`` and ``weights_sha256``."""

    def usage(self) -> dict:
        """What judging cost so far (requests, tokens) for judges that call a service; empty otherwise."""
        return {}


def scores_from_logits(logits: np.ndarray) -> np.ndarray:
    """llm-blender's aggregation: s_i = mean_j (M[i, j] − M[j, i]), the mean over all K (self included)."""
    return (logits - np.swapaxes(logits, -1, -2)).mean(axis=-1)
