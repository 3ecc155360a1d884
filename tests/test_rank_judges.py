"""Model judges in the workflow: iter1 ranked (chat-templated prompts, as the authors) and evaluated by a
tiny PairRM, config checks, errors."""

import hashlib
import json

import numpy as np
import pytest
import yaml
from conftest import REPO, copy_workflow, scheduled_jobs, snakemake, write_config

from sppo import config as cfg
from sppo import evaluate, models, winprob
from sppo.chat import render_prompt
from sppo.judges.tiny import build_tiny_pairrm

# Limits well below PairRM's 1224/412, so that the bundled prompts and the responses get cut.
LIMITS = {"source_max_length": 48, "candidate_max_length": 12}


def small_config(pairrm_path) -> dict:
    return {
        "iterations": 1,
        "split": {"eval_size": 8, "max_per_iteration": 24},
        "generate": {"k": 3, "max_new_tokens": 8},
        "evaluate": {"max_new_tokens": 8},
        "judge": {
            "train": "pairrm",
            "eval": "pairrm",
            "prompt_text": "chat_template",
            "pairrm": {"path": str(pairrm_path), "device": "cpu", **LIMITS},
        },
    }


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def pairrm_dir(tmp_path_factory):
    return build_tiny_pairrm(tmp_path_factory.mktemp("pairrm")).resolve()


@pytest.fixture(scope="module")
def pairrm_run(tmp_path_factory, pairrm_dir):
    """iter1 (the final target) with PairRM as train and eval judge."""
    workdir = copy_workflow(tmp_path_factory.mktemp("pairrm_run") / "wf")
    write_config(workdir, small_config(pairrm_dir))
    snakemake(workdir, "iter1")
    return workdir


@pytest.fixture(scope="module")
def blender(pairrm_dir):
    from llm_blender import Blender, BlenderConfig

    blender = Blender(BlenderConfig(device="cpu", use_tqdm=False))
    blender.loadranker(
        str(pairrm_dir),
        device="cpu",
        source_maxlength=LIMITS["source_max_length"],
        candidate_maxlength=LIMITS["candidate_max_length"],
    )
    return blender


def ranked_rows(run):
    return [row for s in range(2) for row in read_jsonl(run / f"results/iter1/rank/shard{s}.jsonl")]


def test_rank_scores_equal_blender_rank(pairrm_run, blender):
    """The authors' call on the authors' inputs: prompts rendered with π_0's chat template."""
    rows = ranked_rows(pairrm_run)
    assert len(rows) == 24 and all(len(row["responses"]) == 3 for row in rows)
    tokenizer = models.load_tokenizer(str(pairrm_run / "results/iter0/model"), {"trust_remote_code": False})
    expected = blender.rank(
        [render_prompt(tokenizer, row["prompt"]) for row in rows],
        [row["responses"] for row in rows],
        return_scores=True,
        batch_size=1,
        disable_tqdm=True,
    )
    scores = np.array([row["scores"] for row in rows])
    assert np.abs(scores - expected).max() <= 1e-5
    assert np.ptp(scores, axis=1).max() > 1e-3  # not all ties


def test_stored_logits_are_consistent_with_scores(pairrm_run):
    for row in ranked_rows(pairrm_run):
        m = np.array(row["logits"])
        assert m.shape == (3, 3) and np.all(np.diag(m) == 0)
        np.testing.assert_allclose(row["scores"], (m - m.T).mean(axis=1), atol=1e-9)


def test_judge_identity_recorded(pairrm_run, pairrm_dir):
    sha = hashlib.sha256((pairrm_dir / "model.safetensors").read_bytes()).hexdigest()
    rank = json.loads((pairrm_run / "results/iter1/rank/shard0.judge.json").read_text())
    assert rank["judge"]["name"] == "pairrm" and rank["judge"]["weights_sha256"] == sha
    assert rank["judge"]["source"] == str(pairrm_dir)
    assert rank["judge"]["source_max_length"] == LIMITS["source_max_length"]
    for t in (0, 1):
        metrics = json.loads((pairrm_run / f"results/iter{t}/evaluate/metrics.json").read_text())
        assert metrics["judge"]["name"] == "pairrm" and metrics["judge"]["weights_sha256"] == sha
    assert metrics["n_prompts"] == 8


def test_rank_reads_the_policys_tokenizer_as_an_input(pairrm_run, tmp_path):
    record = json.loads((pairrm_run / "results/provenance/iter1/rank/shard0.jsonl.json").read_text())
    assert "results/iter0/model" in record["inputs"]
    assert record["params"]["prompt"] == {
        "text": "chat_template",
        "tokenizer": "results/iter0/model",
        "revision": None,
        "trust_remote_code": False,
    }
    judge = json.loads((pairrm_run / "results/iter1/rank/shard0.judge.json").read_text())
    assert judge["prompt_text"] == "chat_template"
    raw = tmp_path / "raw.yaml"
    raw.write_text("judge:\n  prompt_text: raw\n")
    assert scheduled_jobs(pairrm_run, "iter1", "--configfile", str(raw))["rank"] == 2  # params changed


def test_metrics_recomputed_from_the_annotations_alone(pairrm_run):
    """annotations.json holds AlpacaEval records from which metrics.json's numbers follow."""
    from alpaca_eval.metrics.winrate import get_winrate

    for t in (0, 1):
        annotations = json.loads((pairrm_run / f"results/iter{t}/evaluate/annotations.json").read_text())
        metrics = json.loads((pairrm_run / f"results/iter{t}/evaluate/metrics.json").read_text())
        assert len(annotations) == metrics["n_prompts"] == 8
        assert {(a["generator_1"], a["generator_2"]) for a in annotations} == {
            (metrics["baseline"], metrics["model"])
        }
        p = np.array([a["preference"] for a in annotations]) - 1
        logits = np.array([[a["logit_2_beats_1"], a["logit_1_beats_2"]] for a in annotations])
        np.testing.assert_allclose(p, 1 / (1 + np.exp(-(logits[:, 0] - logits[:, 1]) / 2)), atol=1e-12)
        assert float(p.mean()) == metrics["win_rate"]
        assert get_winrate(annotations)["win_rate"] == pytest.approx(100 * metrics["win_rate"], abs=1e-9)
        assert [int((p > 0.5).sum()), int((p == 0.5).sum())] == [metrics["wins"], metrics["ties"]]
        assert evaluate.length_controlled_winrate(annotations) == metrics["lc_win_rate"]
    assert metrics["lc_win_rate"] is not None and 0 < metrics["lc_win_rate"] < 1  # t = 1: the GLM was fit
    record = json.loads((pairrm_run / "results/provenance/iter1/evaluate/metrics.json.json").read_text())
    path = "results/iter1/evaluate/annotations.json"
    assert record["outputs"][path]["sha256"] == hashlib.sha256((pairrm_run / path).read_bytes()).hexdigest()


def test_truncation_counts_logged(pairrm_run):
    rank = json.loads((pairrm_run / "results/iter1/rank/shard0.judge.json").read_text())
    truncated = rank["truncated"]
    assert truncated["prompts"] > 0 and truncated["responses"] > 0  # the small limits cut some
    log = (pairrm_run / "logs/rank/iter1/shard0.log").read_text()
    assert f"inputs cut to the judge's length limits: {truncated}" in log


def test_matrix_win_probabilities_come_from_the_logits(pairrm_run):
    row = ranked_rows(pairrm_run)[0]
    m = np.array(row["logits"])
    pair = winprob.pair(row, "matrix")
    np.testing.assert_allclose(pair["probs"], 1 / (1 + np.exp(-(m - m.T) / 2)), atol=1e-12)
    from_scores = winprob.pair(row, "scores")
    s = np.array(row["scores"])
    np.testing.assert_allclose(from_scores["probs"], 1 / (1 + np.exp(s[None, :] - s[:, None])), atol=1e-12)
    assert not np.allclose(pair["probs"], from_scores["probs"])  # the two sources differ


def test_reward_model_config_validates(monkeypatch):
    monkeypatch.chdir(REPO)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["judge"] = {"train": "reward_model", "eval": "synthetic", "reward_model": {"path": "org/rm"}}
    full = cfg.validate(config)
    assert full["judge"]["reward_model"] == {
        "path": "org/rm",
        "device": "auto",
        "dtype": "float32",
        "batch_size": 32,
        "max_length": 2048,
        "trust_remote_code": False,
    }
    assert cfg.validate({"judge": {"train": "pairrm"}})["judge"]["reward_model"]["path"] is None


@pytest.mark.parametrize("role", ["train", "eval"])
def test_reward_model_without_path_fails_validation(monkeypatch, role):
    monkeypatch.chdir(REPO)
    with pytest.raises(cfg.ConfigError, match=rf"config key judge\.reward_model\.path: .*judge\.{role}"):
        cfg.validate({"judge": {role: "reward_model"}})


def test_reward_model_without_path_stops_the_workflow(workflow):
    write_config(workflow, {"judge": {"train": "reward_model"}})
    proc = snakemake(workflow, "iter1", check=False)
    assert proc.returncode != 0 and "config key judge.reward_model.path" in proc.stderr
    assert not (workflow / "results").exists()


def test_missing_pairrm_checkpoint_is_refused_before_any_job(workflow, tmp_path):
    missing = tmp_path / "no-such-pairrm"
    write_config(workflow, small_config(missing))
    proc = snakemake(workflow, "results/iter1/rank/shard0.jsonl", check=False)
    assert proc.returncode != 0
    assert f"config key judge.pairrm.path: directory '{missing}' not found" in proc.stderr
    assert not (workflow / "logs").exists() and not (workflow / "results").exists()


def test_missing_pairrm_checkpoint_fails_the_rank_job(workflow):
    """A bare name is a valid hub id, so validation lets it pass; the rank job finds no such directory
    and cannot load it from the hub (offline here), fails naming it and publishes nothing."""
    write_config(workflow, small_config("no-such-pairrm"))
    proc = snakemake(workflow, "results/iter1/rank/shard0.jsonl", check=False)
    assert proc.returncode != 0
    log = (workflow / "logs/rank/iter1/shard0.log").read_text()
    assert "judge checkpoint 'no-such-pairrm': no such directory" in log
    assert not (workflow / "results/iter1/rank/shard0.jsonl").exists()
