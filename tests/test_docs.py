"""Every command written in README.md and docs/ runs as written, and the docs build as a site.

A command is a line of a fenced ``bash`` block (lines ending in ``\\`` continue it), or an inline code
span that starts with ``./run``. Blocks run in a copy of the finished default run, with the checkout's
benchmarks, tests and docs beside it, so a target that is already made is checked for real in seconds.
A comment on the line before a block marks a cheaper form:

* ``<!-- check: dry-run -->``: snakemake gets ``-n``, a benchmark ``--help``, pytest ``--collect-only``
  (long or GPU-only commands: the arguments, config, targets and imports are still checked);
* ``<!-- check: skip REASON -->``: not run; the reason is listed by
  :func:`test_skipped_commands_say_why` (only for what cannot run on a CPU machine).

Inline spans always run in the dry-run form. A shell line in any other block (an output listing) that
looks like a command is refused, so no command escapes the test.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARK = re.compile(r"<!--\s*check:\s*(dry-run|skip\b.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")
INLINE = re.compile(r"`(\./run [^`]+)`")


@dataclass
class Block:
    page: str
    line: int
    mode: str  # "run", "dry-run" or "skip ..."
    commands: list[str]

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def _joined(lines: list[str]) -> list[str]:
    """Shell lines with backslash continuations joined, blank lines and whole-line comments dropped."""
    out, current = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip() and not current.lstrip().startswith("#"):
            out.append(current.strip())
        current = ""
    return out


def blocks(path: Path) -> tuple[list[Block], list[str]]:
    """The command blocks of a Markdown page, and the command-like lines found outside them."""
    name = str(path.relative_to(REPO))
    found, stray = [], []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            body = lines[i + 1 : end]
            if fence.group(1) == "bash":
                before = next((line for line in reversed(lines[:i]) if line.strip()), "")
                mark = MARK.search(before)
                found.append(Block(name, i + 1, mark.group(1) if mark else "run", _joined(body)))
            else:
                stray += [
                    f"{name}:{i + 2 + n}: {b}" for n, b in enumerate(body) if b.startswith(("./run ", "$ ./"))
                ]
            i = end + 1
            continue
        if lines[i].startswith(("    ./run ", "\t./run ")):
            stray.append(f"{name}:{i + 1}: {lines[i].strip()}")
        found += [Block(name, i + 1, "dry-run", [span]) for span in INLINE.findall(lines[i])]
        i += 1
    return found, stray


CONFIG_HEADERS = [*sorted((REPO / "config").rglob("*.yaml")), REPO / "profiles" / "slurm" / "config.yaml"]
HEADER_COMMAND = re.compile(r"^#\s+((?:\w+=\S+ )*\./run .*)$")


def header_commands(path: Path) -> list[Block]:
    """The commands in a config file's or profile's comments (``#   ./run ...``, continuations
    joined), always in the dry-run form: they name GPU recipes."""
    name, lines, found = str(path.relative_to(REPO)), path.read_text().splitlines(), []
    for i, line in enumerate(lines):
        match = HEADER_COMMAND.match(line)
        if match:
            command, j = match.group(1), i
            while command.endswith("\\"):
                j += 1
                command = command[:-1] + " " + lines[j].lstrip("#").strip()
            found.append(Block(name, i + 1, "dry-run", [command]))
    return found


ALL = [block for page in PAGES for block in blocks(page)[0]] + [
    block for path in CONFIG_HEADERS for block in header_commands(path)
]


def cheap(command: str) -> str:
    """The dry-run form of one shell line: a flag added before any trailing comment."""
    code, _, comment = command.partition(" # ")
    words = shlex.split(code, comments=False, posix=True) if code.strip() else []
    if "snakemake" in words:
        code = code.rstrip() + " -n"
    elif any(w.startswith("benchmarks.") or w.startswith("benchmarks/") for w in words):
        code = code.rstrip() + " --help"
    elif "pytest" in words:
        code = code.rstrip() + " --collect-only -q"
    return code + (f" # {comment}" if comment else "")


def test_commands_are_found_and_none_hide_outside_bash_blocks():
    """The parser sees the documented commands (the quick start among them), and no command sits in
    a block the test would not run."""
    stray = [line for page in PAGES for line in blocks(page)[1]]
    assert not stray, "commands outside ```bash blocks (make them bash blocks):\n" + "\n".join(stray)
    quick = next(b for b in ALL if b.page == "README.md")
    commands = [c.partition(" # ")[0].strip() for c in quick.commands]
    assert commands == ["./run snakemake --cores all iter3", "./run pytest"], quick
    assert len(ALL) >= 20, [b.name for b in ALL]
    assert {"config/recipes/gemma-2-9b-it.yaml", "profiles/slurm/config.yaml"} <= {b.page for b in ALL}


def test_skipped_commands_say_why():
    skipped = {b.name: b.mode for b in ALL if b.mode.startswith("skip")}
    assert all(len(mode.split(maxsplit=1)) == 2 for mode in skipped.values()), skipped
    print("not run:", skipped)


@pytest.fixture(scope="module")
def docs_run(finished_run, tmp_path_factory) -> tuple[Path, dict]:
    """A copy of the finished run with what the docs' commands name beside it, a ``run`` that runs its
    arguments in this test's environment (the real one builds the venv this test already runs in), and
    a home directory of its own."""
    work = tmp_path_factory.mktemp("docs") / "wf"
    shutil.copytree(finished_run, work, symlinks=True)
    for name in ("benchmarks", "tests", "docs", "sppo", ".ci", "pyproject.toml", "README.md", "mkdocs.yml"):
        if not (work / name).exists():
            (work / name).symlink_to(REPO / name)
    (work / "run").write_text('#!/usr/bin/env bash\nexec "$@"\n')
    (work / "run").chmod(0o755)
    home = work.parent / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(work),
    }
    return work, env


def scripts() -> dict[str, list[str]]:
    """Each distinct shell script the documented commands make (in their checked form) → where it is
    written; a command written in several places runs once."""
    found: dict[str, list[str]] = {}
    for block in ALL:
        if not block.mode.startswith("skip"):
            lines = [cheap(c) if block.mode == "dry-run" else c for c in block.commands]
            found.setdefault("\n".join(lines), []).append(block.name)
    return found


SCRIPTS = scripts()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: SCRIPTS[script][0])
def test_documented_command_runs(script, docs_run):
    work, env = docs_run
    proc = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{script}\n"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    where = ", ".join(SCRIPTS[script])
    assert proc.returncode == 0, f"{where} failed:\n{script}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


def test_the_docs_build_as_a_site_with_strict_links(tmp_path):
    """mkdocs (Material theme) builds docs/ with --strict: a broken link or anchor fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = {p.parent.name for p in (tmp_path / "site").rglob("index.html")}
    assert {"usage", "fidelity", "judges", "cluster", "provenance", "configuration"} <= pages, pages
