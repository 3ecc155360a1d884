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


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "model"
    with io.atomic_dir(target) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(RuntimeError), io.atomic_dir(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError
    assert (target / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_outputs_get_the_umask_mode_not_a_private_one(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_json(tmp_path / "m.json", {"a": 1})
        with io.atomic_dir(tmp_path / "model") as tmp:
            (tmp / "w").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755


def test_canonical_json_is_stable():
    assert io.dumps({"b": 1, "a": "é"}) == '{"a": "é", "b": 1}'
