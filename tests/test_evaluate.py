"""The evaluate stage's numbers: soft preferences, bootstrap interval, alpaca-eval's LC win rate."""

import math

import numpy as np
import pytest

from sppo import evaluate
from sppo.judges.synthetic import SyntheticJudge, quality


def test_synthetic_quality_ignores_length():
    preferred = frozenset("abc ")
    assert quality("ab!?", preferred) == 0.5
    assert quality("ab!?" * 10, preferred) == 0.5  # longer, same quality
    assert quality("", preferred) == 0.0


def test_synthetic_judge_is_bradley_terry_on_quality():
    judge = SyntheticJudge(sharpness=4.0, preferred="ab")
    verdict = judge.judge(["x"], [["ab", "a!", "!!"]])  # q = 1, 0.5, 0
    assert np.allclose(verdict.logits[0], 4.0 * np.array([[0, 0.5, 1], [-0.5, 0, 0.5], [-1, -0.5, 0]]))
    # s_i = 2λ(q_i − q̄) = 8 · (0.5, 0, −0.5)
    assert np.allclose(verdict.scores[0], [4.0, 0.0, -4.0])


def test_preferences_are_soft_and_symmetric():
    judge = SyntheticJudge(sharpness=2.0, preferred="a")
    logits = evaluate.pair_logits(judge, ["x", "y", "z"], ["aa", "a!", "a"], ["a!", "aa", "a"])
    # q: (1 vs 0.5), (0.5 vs 1), (1 vs 1) → M_ab = 2(q_a − q_b), M_ba = −M_ab
    assert logits.tolist() == [[1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]]
    p = evaluate.preferences(logits)
    assert p == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1)), 0.5])
    # only the difference counts: σ((M_ab − M_ba)/2)
    assert evaluate.preferences(np.array([[3.0, 1.0]])) == pytest.approx([1 / (1 + math.exp(-1))])


def test_bootstrap_interval_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.uniform(0.4, 1.0, size=20)
    large = rng.uniform(0.4, 1.0, size=2000)
    lo_s, hi_s = evaluate.bootstrap_interval(small, 2000, seed=1)
    lo_l, hi_l = evaluate.bootstrap_interval(large, 2000, seed=1)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < hi_s - lo_s
    assert evaluate.bootstrap_interval(np.full(10, 0.5), 500, seed=0) == (0.5, 0.5)
    assert evaluate.bootstrap_interval(small, 2000, seed=1) == (lo_s, hi_s)  # seeded


def records(outputs, baseline, p, model="model", base="base"):
    """AlpacaEval annotations written by hand: output_1 the baseline, preference 1 + p."""
    return [
        {
            "index": i,
            "instruction": f"q{i}",
            "output_1": b,
            "output_2": a,
            "generator_1": base,
            "generator_2": model,
            "preference": 1.0 + q,
        }
        for i, (a, b, q) in enumerate(zip(outputs, baseline, p, strict=True))
    ]


def test_length_controlled_winrate_from_the_library():
    rng = np.random.default_rng(0)
    n = 60
    base = ["b" * int(rng.integers(10, 40)) for _ in range(n)]
    # The model wins exactly when it is longer: the GLM attributes the wins to length,
    # so the length-controlled win rate falls well below the raw one.
    outputs = ["m" * (len(b) + int(rng.integers(-20, 30))) for b in base]
    p = [0.9 if len(o) > len(b) else 0.1 for o, b in zip(outputs, base, strict=True)]
    lc = evaluate.length_controlled_winrate(records(outputs, base, p))
    assert 0 < lc < np.mean(p) - 0.1
    assert evaluate.length_controlled_winrate(records(base, base, [0.5] * n, "base", "base")) == 0.5
    assert evaluate.length_controlled_winrate(records(["aa"] * n, ["b"] * n, p)) is None  # no length spread


def test_split_eval_size_minimum_is_what_the_length_controlled_glm_needs():
    """alpaca-eval fits its GLM with 5-fold cross-validation: fewer held-out prompts than the schema's
    minimum of split.eval_size would fail evaluate after the training, so validation refuses them."""
    from sppo.config import schema

    least = schema()["properties"]["split"]["properties"]["eval_size"]["minimum"]
    rng = np.random.default_rng(1)
    base = ["b" * int(rng.integers(10, 40)) for _ in range(least)]
    outputs = ["m" * int(rng.integers(10, 40)) for _ in range(least)]
    p = list(rng.uniform(0, 1, least))
    assert 0 < evaluate.length_controlled_winrate(records(outputs, base, p)) < 1
    with pytest.raises(ValueError, match="n_splits=5"):
        evaluate.length_controlled_winrate(records(outputs[1:], base[1:], p[1:]))


def test_annotations_are_alpaca_eval_records():
    judge = SyntheticJudge(sharpness=2.0, preferred="a")
    rows = [{"id": "u", "prompt": "x", "output": "aa"}, {"id": "v", "prompt": "y", "output": "a!"}]
    base_rows = [{"id": "v", "prompt": "y", "output": "aa"}, {"id": "u", "prompt": "x", "output": "a!"}]
    annotations = evaluate.annotate(judge, rows, base_rows, model="m", base="b")
    win = 1 / (1 + math.exp(-1))  # π_t's "aa" (q = 1) against π_0's "a!" (q = 0.5): σ((1 − (−1))/2)
    assert annotations[0] == {
        "index": 0,
        "id": "u",
        "instruction": "x",
        "output_1": "a!",
        "output_2": "aa",
        "generator_1": "b",
        "generator_2": "m",
        "annotator": "synthetic",
        "preference": pytest.approx(1 + win),
        "logit_2_beats_1": 1.0,
        "logit_1_beats_2": -1.0,
    }
    assert annotations[1]["preference"] == pytest.approx(2 - win)  # the same pair the other way round
    # AlpacaEval reads them as we do: 2 is a win of output_2, win rate = mean(preference) − 1
    from alpaca_eval.metrics.winrate import get_winrate

    read = get_winrate(annotations)
    assert (read["n_wins"], read["n_wins_base"], read["n_draws"]) == (1, 1, 0)
    assert read["win_rate"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="no baseline answer"):
        evaluate.annotate(judge, rows, base_rows[:1], model="m", base="b")


def test_metrics_come_from_the_annotations():
    outputs = ["aaaa", "a", "aa", "aaa", "aaaaaa", "aa"]  # 18 characters
    baseline = ["b", "bb", "bb", "bbb", "b", "bbb"]  # 12 characters
    annotations = records(outputs, baseline, [1.0, 0.0, 0.5, 0.75, 1.0, 0.5])
    m = evaluate.metrics(annotations, judge={"name": "j"}, bootstrap_samples=500, seed=0)
    assert (m["model"], m["baseline"], m["judge"], m["n_prompts"]) == ("model", "base", {"name": "j"}, 6)
    assert m["win_rate"] == 0.625  # 3.75 / 6
    assert (m["wins"], m["ties"], m["losses"]) == (3, 2, 1)
    assert (m["mean_length"], m["baseline_mean_length"]) == (3.0, 2.0)
    assert m["win_rate_ci95"][0] <= 0.625 <= m["win_rate_ci95"][1]
    assert m["lc_win_rate"] == evaluate.length_controlled_winrate(annotations)


def test_alpaca_eval_export():
    rows = [{"id": str(i), "prompt": f"q{i}", "output": "plain words" + "!" * (i % 3)} for i in range(3)]
    export = evaluate.alpaca_eval_outputs(rows, "m")
    assert export[0] == {"instruction": "q0", "output": "plain words", "generator": "m"}


# AlpacaEval answers as the authors' leaderboard entries were generated (alpaca_eval.generator)
AUTHORS = ["SPPO-Gemma-2-9B-It-PairRM", "SPPO-Llama-3-Instruct-8B-PairRM", "SPPO-Mistral7B-PairRM"]


@pytest.mark.parametrize("name", AUTHORS)
def test_a_generator_template_is_filled_in_as_alpaca_eval_fills_it(name):
    import pandas as pd
    from alpaca_eval import utils

    from sppo import alpaca_eval
    from sppo.chat import prompt_text

    template = alpaca_eval.generator_settings(name)["prompt_template"]
    instructions = ["Write {input} as a poem.", "Two lines:\n  indented, {instruction} twice {instruction}"]
    expected, _ = utils.make_prompts(pd.DataFrame({"instruction": instructions}), template)
    assert [prompt_text(None, text, template) for text in instructions] == expected


def test_the_authors_generation_settings_are_their_alpaca_eval_configs():
    """The settings of alpaca_eval's models_configs/<name>/configs.yaml (read there: Gemma-2 and
    Mistral 0.7 / 0.9 / 2048 tokens, Llama-3 0.9 / 1.0 / 4096 and its two end tokens); a config with
    sampling keys the answers do not reproduce, or no such config, is refused."""
    from sppo import alpaca_eval

    gemma, llama, mistral = (alpaca_eval.generator_settings(name) for name in AUTHORS)
    assert (gemma["temperature"], gemma["top_p"], gemma["max_new_tokens"], gemma["stop_token_ids"]) == (
        0.7,
        0.9,
        2048,
        [],
    )
    assert (llama["temperature"], llama["top_p"], llama["max_new_tokens"]) == (0.9, 1.0, 4096)
    assert llama["stop_token_ids"] == [128001, 128009]
    assert mistral["prompt_template"] == "[INST] {instruction} [/INST]"
    # the quirks kept: Gemma-2's template writes its BOS and ends without the chat template's newline
    assert gemma["prompt_template"].startswith("<bos>") and gemma["prompt_template"].endswith("model")
    with pytest.raises(ValueError, match="top_k"):
        alpaca_eval.generator_settings("SPPO-Mistral7B-PairRM-ExPO")
    with pytest.raises(ValueError, match="no model config 'gpt-9'"):
        alpaca_eval.generator_settings("gpt-9")


def test_a_generator_template_is_tokenized_as_vllm_tokenizes_text(tmp_path):
    """Special tokens added, as vLLM encodes a text prompt: one BOS before a template without one, two
    where the template writes its own (alpaca_eval's Gemma-2 and Llama-3 configs); the chat template's
    text keeps its one BOS. Mistral's real SentencePiece tokenizer (mistral-common's)."""
    from test_tokenizers import mistral_repo

    from sppo import models
    from sppo.chat import prompt_ids, render_prompt

    tokenizer = models.load_tokenizer(
        str(mistral_repo(tmp_path)), {"revision": None, "trust_remote_code": False}
    )
    bos = tokenizer.bos_token_id
    plain = prompt_ids(tokenizer, "Hi there", "[INST] {instruction} [/INST]")
    assert plain == [bos] + tokenizer("[INST] Hi there [/INST]", add_special_tokens=False)["input_ids"]
    own = prompt_ids(tokenizer, "Hi there", "<s>[INST] {instruction} [/INST]")
    assert own[:2] == [bos, bos] and own.count(bos) == 2
    chat = prompt_ids(tokenizer, "Hi there")
    assert chat == tokenizer(render_prompt(tokenizer, "Hi there"), add_special_tokens=False)["input_ids"]
    assert chat.count(bos) == 1
