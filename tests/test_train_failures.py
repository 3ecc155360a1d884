"""What a train job must never do: publish a π_t with non-finite weights, or publish stray files
left in its partial directory by a killed run."""

import pytest
from conftest import CPU_MODEL_CONFIG, run_train, train_settings, write_with_reference_logps
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def pairs(tiny_model_dir, tmp_path_factory):
    rows = [
        {
            "prompt": f"Question {i}?",
            "chosen": [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": "yes " * i},
            ],
            "rejected": [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": "?"},
            ],
            "id": i,
            "chosen_probs": 0.6,
            "chosen_probs_win": 0.7,
            "chosen_probs_lose": 0.3,
        }
        for i in range(4)
    ]
    return write_with_reference_logps(tiny_model_dir, rows, tmp_path_factory.mktemp("pairs") / "pairs.jsonl")


SETTINGS = train_settings(global_batch_size=2, per_device_batch_size=2, max_length=64, max_prompt_length=32)


def test_a_diverging_run_fails_and_publishes_nothing(tiny_model_dir, pairs, tmp_path):
    out = tmp_path / "model"
    diverging = {
        **SETTINGS,
        "optimizer": "sgd",
        "learning_rate": 1e30,
        "warmup_ratio": 0.0,
        "max_grad_norm": 1e30,
    }
    log = run_train(tiny_model_dir, pairs, out, diverging, CPU_MODEL_CONFIG, check=False)
    assert not log.startswith("exit 0"), log[-3000:]
    assert "FloatingPointError: training step " in log, log[-3000:]
    assert " is nan" in log or " is inf" in log or "non-finite" in log, log[-3000:]
    assert not out.exists() and not (tmp_path / ".model.partial").exists()
    assert not (tmp_path / ".model.checkpoints").exists()  # none was due (sppo.resume)


def test_stray_files_of_a_killed_run_are_not_published(tiny_model_dir, pairs, tmp_path):
    out = tmp_path / "model"
    partial = tmp_path / ".model.partial"
    partial.mkdir()
    (partial / "model.safetensors.index.json").write_text('{"weight_map": {}}')  # transformers prefers it
    run_train(tiny_model_dir, pairs, out, {**SETTINGS, "schedule_epochs": 1}, CPU_MODEL_CONFIG)
    assert not (out / "model.safetensors.index.json").exists() and not partial.exists()
    assert load_file(out / "model.safetensors")
