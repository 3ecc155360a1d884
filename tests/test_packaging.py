"""A non-editable install carries the data files the package reads: the wheel holds them."""

import os
import shutil
import subprocess
import sys
import zipfile

from conftest import REPO

from sppo.config import schema
from sppo.provenance.crate import CONTEXT_FILE

# Every file the package opens from its own directory, relative to the package.
DATA = [
    "sppo/schemas/config.schema.yaml",
    "sppo/provenance/ro-crate-1.1-context.jsonld",
    "sppo/judges/templates/pairwise.txt",
]
# What a fresh checkout does not have (an editable install's egg-info would list the data files).
NOT_IN_A_CHECKOUT = (".git", ".venv", "*.egg-info", "build", "results", "logs", ".snakemake", "__pycache__")


def test_the_wheel_carries_the_schema_and_the_crate_context(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_IN_A_CHECKOUT))
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run(
        [*pip, "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("sppo-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert set(DATA) <= names, sorted(n for n in names if not n.endswith(".py"))
        assert archive.read(DATA[1]) == CONTEXT_FILE.read_bytes()
    assert (REPO / DATA[0]).is_file() and schema()["properties"]  # the file the code reads is that one

    # Installed from the wheel (not editable), used from another directory: the package reads its
    # schema and crate context from where it is installed.
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target", str(site)]
    proc = subprocess.run([*install, str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = (
        "import json, sppo, sppo.config as c, sppo.provenance.crate as k;"
        f"assert sppo.__file__.startswith({str(site)!r}), sppo.__file__;"
        "json.loads(k.CONTEXT_FILE.read_text());"
        "print(c.markdown(), end='')"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-c", check], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == (REPO / "config" / "README.md").read_text()  # the whole schema, read there
