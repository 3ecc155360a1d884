"""Judges: preference models that rank K responses per prompt (see :mod:`sppo.judges.base`)."""

from __future__ import annotations

from sppo.judges.base import Judge, Judgement

# Whether each judge computes on a GPU: with the config's `gpus: true`, a rank or evaluate job asks
# for one only when its judge does. Kept here, not on the classes, so that the workflow reads it
# without importing torch or llm-blender.
USES_GPU = {"synthetic": False, "pairrm": True, "reward_model": True, "llm": False}  # llm: its server does


def load_judge(judge_config: dict, role: str, cache_path=None) -> Judge:
    """Build the judge named by ``judge_config[role]`` (role: "train" or "eval") with its settings.

    ``judge_config`` is the config's ``judge`` section: ``train`` and ``eval`` name a judge, and a
    section of the same name holds that judge's settings. ``cache_path``: the llm judge's
    request/response cache (a JSON Lines file beside the job's outputs); other judges ignore it.
    """
    name = judge_config[role]
    settings = dict(judge_config.get(name) or {})
    if name == "synthetic":
        from sppo.judges.synthetic import SyntheticJudge

        return SyntheticJudge(**settings)
    elif name == "pairrm":
        from sppo.judges.pairrm import PairRMJudge

        return PairRMJudge(**settings)
    elif name == "reward_model":
        from sppo.judges.reward_model import RewardModelJudge

        return RewardModelJudge(**settings)
    elif name == "llm":
        from sppo.judges.llm import LLMJudge

        return LLMJudge(**settings, cache_path=cache_path)
    raise ValueError(f"judge.{role}: unknown judge {name!r}")


__all__ = ["USES_GPU", "Judge", "Judgement", "load_judge"]
