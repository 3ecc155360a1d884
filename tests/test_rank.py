"""The rank stage: the prompt text handed to the train judge (judge.prompt_text) and its config checks."""

import numpy as np
import pytest
from conftest import REPO

from sppo import config as cfg
from sppo import models, rank
from sppo.chat import render_prompt
from sppo.judges import Judge, Judgement

# Texts a careless rendering would change: surrounding and inner whitespace, markup, non-ASCII.
PROMPTS = ["  Name three colours.\n", "Tab\there, no-break\u00a0space", "<s>[INST] ünïcode ﬁ [/INST]"]


class RecordingJudge(Judge):
    """Remembers the prompts it was handed; every response ties."""

    name = "recording"

    def __init__(self):
        self.prompts = []

    def judge(self, prompts, candidates):
        self.prompts.extend(prompts)
        k = len(candidates[0])
        return Judgement(logits=np.zeros((len(prompts), k, k)), scores=np.zeros((len(prompts), k)))

    def identity(self):
        return {"name": self.name}


def rows():
    return [{"id": str(i), "prompt": p, "responses": ["a", "b"]} for i, p in enumerate(PROMPTS)]


def test_raw_prompts_reach_the_judge_unchanged():
    judge = RecordingJudge()
    ranked, truncated = rank.rank_rows(judge, rows(), chunk_prompts=2)
    assert judge.prompts == PROMPTS and truncated == {}
    assert ranked == [{**r, "scores": [0.0, 0.0], "logits": [[0.0, 0.0], [0.0, 0.0]]} for r in rows()]


def test_chat_template_prompts_are_the_policys_rendering(tiny_model_dir):
    tokenizer = models.load_tokenizer(str(tiny_model_dir), {"trust_remote_code": False})
    judge = RecordingJudge()
    ranked, _ = rank.rank_rows(judge, rows(), chunk_prompts=2, tokenizer=tokenizer)
    expected = [render_prompt(tokenizer, p) for p in PROMPTS]
    assert judge.prompts == expected
    for prompt, text in zip(PROMPTS, judge.prompts, strict=True):
        assert prompt in text and text != prompt  # the template wraps the prompt, special tokens included
        assert text.startswith(tokenizer.bos_token)
    assert [r["prompt"] for r in ranked] == PROMPTS  # the stored prompt stays raw


def test_prompt_text_defaults_to_raw_and_rejects_other_values(monkeypatch):
    monkeypatch.chdir(REPO)
    assert cfg.validate({})["judge"]["prompt_text"] == "raw"
    with pytest.raises(cfg.ConfigError, match=r"config key judge\.prompt_text: 'chat' is not one of"):
        cfg.validate({"judge": {"prompt_text": "chat"}})


def test_chat_template_prompts_are_not_for_a_reward_model(monkeypatch):
    monkeypatch.chdir(REPO)
    judge = {"train": "reward_model", "reward_model": {"path": "org/rm"}, "prompt_text": "chat_template"}
    with pytest.raises(cfg.ConfigError, match=r"config key judge\.prompt_text: chat_template is not for"):
        cfg.validate({"judge": judge})
    judge["train"] = "pairrm"  # a reward model as the eval judge is fine: evaluate hands it raw prompts
    assert (
        cfg.validate({"judge": {**judge, "eval": "reward_model"}})["judge"]["prompt_text"] == "chat_template"
    )
