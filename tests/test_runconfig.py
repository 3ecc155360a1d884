"""A config file is complete on its own, and a results/ holds one configuration's run (sppo.runconfig)."""

import shutil

import pytest
import yaml
from conftest import REPO, scheduled_jobs, snakemake

from sppo import runconfig


def test_a_run_without_config_files_is_the_toy_and_paths_are_named_from_the_working_directory(tmp_path):
    assert runconfig.names([], tmp_path) == ["config/config.yaml"]
    inside, outside = tmp_path / "config" / "mine.yaml", tmp_path.parent / "elsewhere.yaml"
    assert runconfig.names([inside, "config/config.yaml"], tmp_path) == [
        "config/mine.yaml",
        "config/config.yaml",
    ]
    assert runconfig.names([outside], tmp_path) == [str(outside.resolve())]


def test_the_same_configuration_rewrites_its_record_and_another_is_refused(tmp_path):
    record = tmp_path / "results" / "config.yaml"
    runconfig.claim(["config/config.yaml"], {"seed": 1}, record)
    runconfig.claim(["config/config.yaml"], {"seed": 2}, record)  # an edited config: the same run
    assert yaml.safe_load(record.read_text()) == {
        "configfiles": ["config/config.yaml"],
        "config": {"seed": 2},
    }
    other = ["config/config.yaml", "config/compare.yaml"]
    with pytest.raises(runconfig.OtherConfigurationError, match="config/compare.yaml") as error:
        runconfig.claim(other, {"seed": 2}, record)
    assert "holds the run of --configfile config/config.yaml;" in str(error.value)
    assert yaml.safe_load(record.read_text())["configfiles"] == ["config/config.yaml"]  # untouched
    record.write_text("configfiles: [unclosed\n")
    with pytest.raises(runconfig.OtherConfigurationError, match="not a run configuration record"):
        runconfig.claim(other, {}, record)


def resolved(workdir, *args) -> dict:
    """The config ``show_config`` prints for a run with ``args``."""
    proc = snakemake(workdir, "show_config", *args)
    text = proc.stdout[proc.stdout.index("# The run configuration") :]
    return yaml.safe_load(text[: text.index("\n[")] if "\n[" in text else text)


def test_a_config_file_takes_the_schema_defaults_from_the_checkout_and_from_another_directory(
    workflow, tmp_path
):
    """A file that sets one key: every other key is the schema's default (η 1000, lr 5e-7), not the
    toy's (η 100, lr 1e-3), whether the run starts in the checkout or in another directory; without a
    file the run is the toy. show_config claims nothing."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("train:\n  max_grad_norm: 0.5\n")
    here = resolved(workflow, "--configfile", str(mine))
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copy(REPO / "data" / "prompts.jsonl", project / "data")  # prompts.path is relative
    there = resolved(
        project, "-s", str(workflow / "Snakefile"), "--directory", str(project), "--configfile", str(mine)
    )
    assert here["config"] == there["config"]
    train = here["config"]["train"]
    assert (train["max_grad_norm"], train["eta"], train["learning_rate"], train["max_length"]) == (
        0.5,
        1000,
        5e-7,
        1024,
    )
    toy = resolved(workflow)
    assert toy["configfiles"] == ["config/config.yaml"]
    assert (toy["config"]["train"]["eta"], toy["config"]["train"]["learning_rate"]) == (100, 1e-3)
    layered = resolved(workflow, "--configfile", "config/config.yaml", str(mine))["config"]["train"]
    assert (layered["max_grad_norm"], layered["eta"]) == (0.5, 100)
    assert not (workflow / "results").exists() and not (project / "results").exists()


def test_another_configuration_in_the_same_directory_leaves_the_run_intact(copy_run):
    """The finished default run, then config/compare.yaml in the same directory: refused before any job,
    naming both configurations; every output of the default run is as it was, and still current."""
    work = copy_run()
    assert yaml.safe_load((work / "results" / "config.yaml").read_text())["configfiles"] == [
        "config/config.yaml"
    ]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (work / "results").rglob("*") if p.is_file()}
    proc = snakemake(work, "iter3", "--configfile", "config/config.yaml", "config/compare.yaml", check=False)
    assert proc.returncode != 0
    assert (
        "results/ holds the run of --configfile config/config.yaml; this run is --configfile" in proc.stderr
    )
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (work / "results").rglob("*") if p.is_file()}
    assert after == before
    assert scheduled_jobs(work, "iter3") == {}
    # In a directory of its own (as docs/variants.md runs it) the comparison plans its jobs.
    compare = work / "runs" / "compare"
    (compare / "data").mkdir(parents=True)
    shutil.copy(REPO / "data" / "prompts.jsonl", compare / "data")
    jobs = scheduled_jobs(
        work,
        "-s",
        "Snakefile",
        "--directory",
        str(compare),
        "iter3",
        "--configfile",
        "config/config.yaml",
        "config/compare.yaml",
    )
    assert jobs["train"] == 12 and jobs["split"] == 1, jobs
