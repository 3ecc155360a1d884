"""Malformed files name the file and the line; writes are atomic."""

import os
import stat

import pytest

from sppo import io


def test_bad_json_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b"\n')
    with pytest.raises(io.InputFileError, match=r"prompts\.jsonl:2: invalid JSON"):
        io.read_jsonl(path, required=["prompt"])


def test_missing_column(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "a"}\n\n{"text": "b"}\n')
    with pytest.raises(io.InputFileError, match=r"prompts\.jsonl:3: missing column\(s\) 'prompt'"):
        io.read_jsonl(path, required=["prompt"])


def test_not_utf8(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(io.InputFileError, match=r"prompts\.jsonl:2: not valid UTF-8"):
        io.read_jsonl(path)


def test_not_an_object(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(io.InputFileError, match=r"x\.jsonl:1: expected a JSON object"):
        io.read_jsonl(path)


def test_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('\n{"prompt": "a"}\n\n   \n{"prompt": "b"}\n')
    assert list(io.numbered_jsonl(path)) == [(2, {"prompt": "a"}), (5, {"prompt": "b"})]
    path.write_text('{"prompt": "a"}\n\n\n{"prompt": ')
    with pytest.raises(io.InputFileError, match=r"prompts\.jsonl:4: invalid JSON"):
        io.read_jsonl(path)


def test_byte_order_mark_is_not_an_error(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes('\ufeff{"prompt": "a"}\n'.encode())
    assert io.read_jsonl(path, required=["prompt"]) == [{"prompt": "a"}]


def test_missing_file(tmp_path):
    with pytest.raises(io.InputFileError, match="file not found"):
        io.read_jsonl(tmp_path / "nope.jsonl")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"

    def rows():
        yield {"a": 1}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        io.write_jsonl(target, rows())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [1.0, float("-inf")]])
def test_a_non_finite_row_is_never_published(tmp_path, value):
    target = tmp_path / "scores.jsonl"
    rows = [{"id": "a1", "scores": [0.5]}, {"id": "b2", "scores": value}]
    with pytest.raises(ValueError, match=r"scores\.jsonl: row 2 \(id b2\): Out of range float"):
        io.write_jsonl(target, rows)
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_publishes_only_on_success(tmp_path):
    target = tmp_path / "model"
    with io.atomic_directory(target) as partial:
        assert partial == tmp_path / ".model.partial" and list(partial.iterdir()) == []
        (partial / "weights").write_text("v1")
        assert not target.exists()
    assert (target / "weights").read_text() == "v1"
    with io.atomic_directory(target) as partial:
        (partial / "weights").write_text("v2")
    assert [p.name for p in target.iterdir()] == ["weights"] and (target / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failed_atomic_directory_leaves_nothing_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(FileNotFoundError), io.atomic_directory(target) as partial:
        (partial / "weights").write_text("half")
        raise FileNotFoundError
    assert list(tmp_path.iterdir()) == []
    with io.atomic_directory(target) as partial:
        (partial / "weights").write_text("v1")
    with pytest.raises(RuntimeError), io.atomic_directory(target) as partial:
        (partial / "weights").write_text("half")
        raise RuntimeError
    assert (target / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_directory_publishes_what_the_umask_lets_others_read(tmp_path):
    """safetensors writes model.safetensors 0600; a published π_t must be readable on a shared cluster."""
    old = os.umask(0o027)
    try:
        with io.atomic_directory(tmp_path / "model") as partial:
            (partial / "model.safetensors").write_text("w")
            (partial / "model.safetensors").chmod(0o600)
            (partial / "lora").mkdir(mode=0o700)
            (partial / "lora" / "adapter.bin").write_text("a")
            (partial / "lora" / "adapter.bin").chmod(0o600)
            (partial / "run.sh").write_text("")
            (partial / "run.sh").chmod(0o700)
    finally:
        os.umask(old)
    mode = {p.name: p.stat().st_mode & 0o777 for p in [tmp_path / "model", *(tmp_path / "model").rglob("*")]}
    assert mode == {
        "model": 0o750,
        "model.safetensors": 0o640,
        "lora": 0o750,
        "adapter.bin": 0o640,
        "run.sh": 0o740,
    }


def test_atomic_directory_starts_empty_after_a_killed_run(tmp_path):
    leftover = tmp_path / "out" / ".model.partial"
    (leftover / "sub").mkdir(parents=True)
    (leftover / "model.safetensors.index.json").write_text("{}")  # transformers would prefer it
    with io.atomic_directory(tmp_path / "out" / "model") as partial:
        assert partial == leftover and list(partial.iterdir()) == []
        (partial / "model.safetensors").write_text("w")
    assert [p.name for p in (tmp_path / "out" / "model").iterdir()] == ["model.safetensors"]
    assert not leftover.exists()


def _save_in_two_processes(rank: int, out: str, init: str) -> None:
    import time

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    with io.atomic_directory(out, is_writer=rank == 0) as partial:
        if rank == 1:
            time.sleep(1)  # the writer must wait for this part before it renames
        (partial / f"part{rank}").write_text(str(rank))
    dist.destroy_process_group()


def test_atomic_directory_waits_for_every_process_before_publishing(tmp_path):
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_save_in_two_processes, args=(str(tmp_path / "model"), init), nprocs=2)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["part0", "part1"]
    assert not (tmp_path / ".model.partial").exists()


def test_atomic_outputs_get_the_umask_mode_not_a_private_one(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_json(tmp_path / "m.json", {"a": 1})
        with io.atomic_directory(tmp_path / "model") as partial:
            (partial / "w").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755


def test_canonical_json_is_stable():
    assert io.dumps({"b": 1, "a": "é"}) == '{"a": "é", "b": 1}'
