"""The split stage: disjoint parts, a disjoint held-out set, dropped prompts counted, determinism."""

import json

import pytest

from sppo import split
from sppo.io import InputFileError


def test_local_split_is_disjoint_and_complete():
    prompts = [f"prompt {i}" for i in range(100)] + ["", "   ", "prompt 3", None, "prompt 7"]
    result = split.split_local(prompts, iterations=3, eval_size=10, seed=1)
    parts, held_out = result["parts"], result["eval"]
    assert len(held_out) == 10
    assert [len(p) for p in parts] == [30, 30, 30]
    everything = held_out + [p for part in parts for p in part]
    assert len(everything) == len(set(everything)) == 100
    assert result["dropped"] == {"empty": 3, "duplicate": 2}


def test_local_split_is_deterministic_and_seeded():
    prompts = [f"prompt {i}" for i in range(50)]
    a = split.split_local(prompts, 3, 5, seed=7)
    assert a == split.split_local(prompts, 3, 5, seed=7)
    assert a != split.split_local(prompts, 3, 5, seed=8)


def test_cap_per_iteration():
    result = split.split_local([f"p{i}" for i in range(40)], 2, 4, seed=0, max_per_iteration=5)
    assert [len(p) for p in result["parts"]] == [5, 5]


def test_too_few_prompts():
    with pytest.raises(InputFileError, match="too few"):
        split.split_local(["a", "b", "c"], iterations=3, eval_size=2, seed=0)


def test_given_parts_drop_repeats_and_keep_eval_outside_training():
    train = [["a", "b", "c"], ["c", "d", ""], ["e", "a", "f"]]
    evaluation = ["b", "g", "h", "g", "d", "i"]
    result = split.split_given(train, evaluation, eval_size=3, seed=0)
    assert result["parts"] == [["a", "b", "c"], ["d"], ["e", "f"]]
    assert sorted(result["eval"]) == ["g", "h", "i"]
    assert result["dropped"] == {"empty": 1, "duplicate": 5}


def test_snorkel_layout_loads_through_datasets(tmp_path):
    """The real loading code on a local dataset directory laid out as the hub dataset is."""
    pytest.importorskip("pyarrow")
    import pandas as pd

    data = tmp_path / "snorkel" / "data"
    data.mkdir(parents=True)
    splits = {
        "train_iteration_1": ["x1", "x2", "x3"],
        "train_iteration_2": ["y1", "y2", "x1"],
        "train_iteration_3": ["z1", "z2"],
        "test_iteration_1": ["t1", "t2", "y1"],
    }
    for name, prompts in splits.items():
        frame = pd.DataFrame(
            {"prompt_id": range(len(prompts)), "prompt": prompts, "chosen": [""] * len(prompts)}
        )
        frame.to_parquet(data / f"{name}-00000-of-00001.parquet")
    config = {
        "source": "snorkel",
        "dataset": str(tmp_path / "snorkel"),
        "column": "prompt",
        "train_splits": ["train_iteration_1", "train_iteration_2", "train_iteration_3"],
        "eval_splits": ["test_iteration_1"],
    }
    result = split.run(config, {"eval_size": 2, "max_per_iteration": None}, iterations=3, seed=0)
    assert result["parts"] == [["x1", "x2", "x3"], ["y1", "y2"], ["z1", "z2"]]
    assert sorted(result["eval"]) == ["t1", "t2"]
    with pytest.raises(InputFileError, match="no column 'instruction'"):
        split.run({**config, "column": "instruction"}, {"eval_size": 2, "max_per_iteration": None}, 3, 0)


def test_prompt_ids_are_stable():
    assert split.prompt_id("hello") == "2cf24dba5fb0a30e"  # sha256("hello")[:16]
    assert split.rows(["hello"]) == [{"id": "2cf24dba5fb0a30e", "prompt": "hello"}]


def test_non_string_prompt_names_file_and_line_counting_blank_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "ok"}) + "\n\n  \n" + json.dumps({"prompt": 5}) + "\n")
    with pytest.raises(InputFileError, match=r"p\.jsonl:4: column 'prompt' is not a string"):
        split.read_local(str(path), "prompt")


def local_split(tmp_path, lines: list[str], eval_size=2, iterations=2):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    config = {"source": "local", "path": str(path), "column": "prompt"}
    return split.run(config, {"eval_size": eval_size, "max_per_iteration": None}, iterations, seed=0)


@pytest.mark.parametrize("lines", [[], ["", "  "]], ids=["empty", "blank lines only"])
def test_file_without_rows_is_named(tmp_path, lines):
    with pytest.raises(InputFileError, match=r"p\.jsonl: no prompts \(the file has no rows\)"):
        local_split(tmp_path, lines)


@pytest.mark.parametrize(
    ("prompts", "dropped"),
    [
        (["", "  ", None], "0 usable of 3 (3 empty and 0 duplicate dropped)"),
        (["a", "a", "a", "a"], "1 usable of 4 (0 empty and 3 duplicate dropped)"),
        (["a", "b", "", "a", "c"], "3 usable of 5 (1 empty and 1 duplicate dropped)"),
    ],
    ids=["all empty", "all duplicates", "too few left"],
)
def test_too_few_usable_prompts_names_file_and_counts_dropped(tmp_path, prompts, dropped):
    lines = [json.dumps({"prompt": p}) for p in prompts]
    with pytest.raises(InputFileError) as err:
        local_split(tmp_path, lines, eval_size=2, iterations=2)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'p.jsonl'}: too few usable prompts: {dropped};"), message
    assert "need 2 held out (split.eval_size) + one per iteration (2)" in message


def test_enough_usable_prompts_after_drops(tmp_path):
    lines = [json.dumps({"prompt": p}) for p in ["a", "b", "", "a", "c", "d"]]
    result = local_split(tmp_path, lines, eval_size=2, iterations=2)
    assert result["dropped"] == {"empty": 1, "duplicate": 1} and len(result["eval"]) == 2


def test_given_parts_without_usable_prompts_are_named():
    names = (["ds split t1", "ds split t2"], "ds splits e1")
    with pytest.raises(
        InputFileError, match=r"ds split t2: no usable prompts: 0 usable of 3 \(1 empty and 2"
    ):
        split.split_given([["a", "b"], ["a", "", "b"]], ["x"], eval_size=1, seed=0, names=names)
    with pytest.raises(
        InputFileError, match=r"ds splits e1: too few usable prompts: 1 usable of 3 \(0 empty"
    ):
        split.split_given([["a"], ["b"]], ["a", "x", "x"], eval_size=2, seed=0, names=names)
