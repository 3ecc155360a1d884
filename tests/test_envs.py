"""The conda env files in envs/ agree with pyproject.toml: same packages, same exact pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"

# What each rule group's environment must provide (canonical names).
MODEL_NEEDS = {
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "peft",
    "deepspeed",
    "llm-blender",
    "alpaca-eval",
    "setuptools",
    "numpy",
    "pandas",
    "jsonschema",
    "pyyaml",
    "datasets",
    "huggingface-hub",
}
DATA_NEEDS = {"numpy", "pandas", "jsonschema", "pyyaml", "matplotlib", "datasets", "huggingface-hub"}
NEEDS = {"model": MODEL_NEEDS, "data": DATA_NEEDS}

# The editable install of this package, relative to <workdir>/.snakemake/conda/ (see envs/model.yaml).
PACKAGE_LINE = "-e ../.."


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def _pins(requirements: list[str]) -> dict[str, SpecifierSet]:
    pins: dict[str, SpecifierSet] = {}
    for line in requirements:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in pins, f"{name} listed twice"
        pins[name] = req.specifier
    return pins


def _load_env(name: str) -> dict:
    with open(ENVS / f"{name}.yaml") as fh:
        return yaml.safe_load(fh)


def _pip_section(env: dict) -> list[str]:
    sections = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict)]
    assert len(sections) == 1, "expected exactly one pip: section"
    return [str(line) for line in sections[0]]


def _env_pins(env: dict) -> dict[str, SpecifierSet]:
    return _pins([line for line in _pip_section(env) if not line.startswith("-")])


@pytest.fixture(scope="module")
def project_pins() -> dict[str, SpecifierSet]:
    return _pins(_pyproject()["project"]["dependencies"])


@pytest.mark.parametrize("name", ["model", "data"])
def test_env_structure(name: str) -> None:
    env = _load_env(name)
    assert isinstance(env, dict)
    assert env["channels"] == ["conda-forge", "nodefaults"]
    conda_deps = [dep for dep in env["dependencies"] if isinstance(dep, str)]
    assert "python=3.11" in conda_deps
    assert "pip" in conda_deps
    pip_lines = _pip_section(env)
    assert PACKAGE_LINE in pip_lines, f"{name}.yaml must install the sppo package ({PACKAGE_LINE!r})"
    # Anything that is not an option line must be a valid requirement.
    _env_pins(env)


def test_env_python_satisfies_requires_python() -> None:
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert Version("3.11") in requires


@pytest.mark.parametrize("name", ["model", "data"])
def test_env_pins_match_pyproject(name: str, project_pins: dict[str, SpecifierSet]) -> None:
    env_pins = _env_pins(_load_env(name))
    not_in_pyproject = sorted(set(env_pins) - set(project_pins))
    assert not not_in_pyproject, f"{name}.yaml pins packages pyproject.toml does not: {not_in_pyproject}"
    mismatched = {
        pkg: {"env": str(spec), "pyproject": str(project_pins[pkg])}
        for pkg, spec in env_pins.items()
        if spec != project_pins[pkg]
    }
    assert not mismatched, f"{name}.yaml pins differ from pyproject.toml: {mismatched}"


@pytest.mark.parametrize("name", ["model", "data"])
def test_env_has_everything_it_needs(name: str, project_pins: dict[str, SpecifierSet]) -> None:
    needs = NEEDS[name]
    assert needs <= set(project_pins), f"not pinned in pyproject.toml: {sorted(needs - set(project_pins))}"
    missing = sorted(needs - set(_env_pins(_load_env(name))))
    assert not missing, f"{name}.yaml lacks packages it needs: {missing}"


def test_pyproject_pins_are_exact(project_pins: dict[str, SpecifierSet]) -> None:
    # Everything is pinned with == except setuptools (an upper bound: alpaca-eval needs pkg_resources)
    # and torch (a range: 2.13 is the CPU wheel ./run installs, the vllm extra needs 2.14).
    loose = {
        pkg: str(spec)
        for pkg, spec in project_pins.items()
        if pkg not in ("setuptools", "torch") and not (len(spec) == 1 and next(iter(spec)).operator == "==")
    }
    assert not loose, f"pyproject.toml dependencies not pinned exactly: {loose}"
    assert str(project_pins["setuptools"]) == "<81"
    assert Version("2.13.0") in project_pins["torch"] and Version("2.14.0") in project_pins["torch"]


def test_vllm_extra_fits_the_environment(project_pins: dict[str, SpecifierSet]) -> None:
    """vllm 0.33.0's own requirements (from its wheel's metadata) admit the project's pins."""
    extra = _pins(_pyproject()["project"]["optional-dependencies"]["vllm"])
    assert str(extra["vllm"]) == "==0.33.0"
    # vllm 0.33.0 requires torch==2.14.0, transformers>=5.16.1,<5.21.0, tokenizers>=0.23.2, and (through
    # mistral-common, on Python <= 3.12) numpy<2.4.
    needs = {
        "torch": ("2.14.0", SpecifierSet("==2.14.0")),
        "transformers": (None, SpecifierSet(">=5.16.1,<5.21.0")),
        "tokenizers": (None, SpecifierSet(">=0.23.2")),
        "numpy": (None, SpecifierSet("<2.4")),
    }
    for pkg, (version, spec) in needs.items():
        ours = project_pins[pkg]
        pinned = version or next(iter(ours)).version
        assert Version(pinned) in ours and Version(pinned) in spec, f"{pkg}: {ours} vs vllm's {spec}"
