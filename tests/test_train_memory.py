"""benchmarks/train_memory.py at toy shapes, so that it cannot rot: every variant runs in its own
process and starts from the same loss and log-probs."""

import os

import pytest

from benchmarks import train_memory


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "rows.json"
    args = ["--tiny", "--shapes", "llama-58m", "--all-variants", "--prompt-len", "16", "--response-len", "48"]
    args += ["--chunk", "20", "--steps", "1", "--threads", "1", "--json", str(path)]
    return train_memory.main(args), path


def test_every_variant_has_a_row(output):
    rows, path = output
    assert [r["variant"] for r in rows] == train_memory.ALL_VARIANTS
    assert path.exists()
    for row in rows:
        assert row["step_s"] > 0
        assert row["peak_rss_mib"] >= row["rss_before_steps_mib"] > 0
        assert row["chunk"] == (20 if row["variant"].endswith("chunked") else 0)
        assert row["pairs"] == 4
        assert row["responses"] == (5 if "all K" in row["variant"] else 2)
    lines = train_memory.table(rows).splitlines()
    assert len(lines) == 1 + len(rows) and all("llama-58m" in line for line in lines[1:])


def test_variants_start_from_the_same_step(output):
    """Precomputed or live reference, chunked or full logits: the same first loss and log-probs."""
    rows, _ = output
    first = rows[0]
    for row in rows:
        assert row["first_max_abs_r"] < 1e-3, row["variant"]
        if "all K" in row["variant"]:  # another objective over 5 responses per prompt
            assert row["first_logps_sum"] < first["first_logps_sum"] < 0
            continue
        assert row["first_loss"] == pytest.approx(first["first_loss"], rel=1e-6), row["variant"]
        assert row["first_logps_sum"] == pytest.approx(first["first_logps_sum"], rel=1e-5), row["variant"]
    assert first["first_logps_sum"] < 0


def test_machine_line_names_cores_and_torch():
    line = train_memory.machine()
    assert f"{os.cpu_count()} cores" in line and "torch" in line
