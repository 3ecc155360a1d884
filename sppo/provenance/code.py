"""The code version a job ran with: git commit and dirtiness, and a hash of the project's own code.

The code of rule R is: the Snakefile, rules/common.smk and the rules/*.smk that defines R (every
rules/*.smk but rules/audit.smk if none does), the rule's script scripts/R.py, and every module of
the ``sppo`` package that script imports, directly or not (found statically, imports inside
functions included, so an over-approximation: e.g. every judge module for rank).
``sppo.provenance`` is left out: it records, it shapes no artifact. Snakemake itself does not see
a change to a ``script:`` file as a code change, hence this hash.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
from pathlib import Path

from sppo.provenance.hashing import file_sha256, tree_sha256

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the sppo package
EXCLUDED_MODULES = ("sppo.provenance",)
EXCLUDED_WORKFLOW_FILES = ("rules/audit.smk",)  # the audit makes no artifact
# The directory of the workflow's Snakefile; rules/common.smk sets it for every job, so that a run
# started from another working directory (snakemake -s DIR/Snakefile --directory WORK) finds it.
WORKFLOW_DIR_ENV = "SPPO_WORKFLOW_DIR"


def workflow_dir() -> Path:
    """The workflow's directory: $SPPO_WORKFLOW_DIR when Snakemake runs the job, else the working one."""
    return Path(os.environ.get(WORKFLOW_DIR_ENV) or ".").resolve()


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "sppo" or name.startswith(EXCLUDED_MODULES):
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(source: str, package: str) -> set[str]:
    """Module names any ``import`` in ``source`` may load (``package`` resolves relative ones)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    # importing a.b.c runs a/__init__.py and a/b/__init__.py first
    return {".".join(n.split(".")[: i + 1]) for n in names for i in range(n.count(".") + 1)}


def package_files(script: Path) -> list[Path]:
    """The sppo modules ``script`` imports, transitively."""
    seen: dict[str, Path] = {}
    todo = [(script, "")]
    while todo:
        path, package = todo.pop()
        for name in _imported_names(path.read_text(encoding="utf-8"), package):
            module = _module_file(name)
            if module is not None and name not in seen:
                seen[name] = module
                todo.append((module, name if module.name == "__init__.py" else name.rpartition(".")[0]))
    return sorted(set(seen.values()))


def _workflow_files(root: Path, rule: str) -> list[Path]:
    smk = [
        p
        for p in sorted((root / "rules").glob("*.smk"))
        if p.relative_to(root).as_posix() not in EXCLUDED_WORKFLOW_FILES
    ]
    defines = re.compile(rf"^rule\s+{re.escape(rule)}\s*:", re.MULTILINE)
    own = [p for p in smk if defines.search(p.read_text(encoding="utf-8"))]
    shared = [root / "Snakefile", root / "rules" / "common.smk"]
    return [p for p in shared + own if p.is_file()] if own else [p for p in shared[:1] + smk if p.is_file()]


def workflow_of(records: dict, snakefile: str | None = None) -> Path:
    """The workflow directory to audit against: ``snakefile``'s, else $SPPO_WORKFLOW_DIR (set inside a
    Snakemake job), else the working directory if it holds a Snakefile, else the directory the
    records were made with (a run started with snakemake -s DIR/Snakefile --directory WORK)."""
    if snakefile:
        return Path(snakefile).resolve().parent
    if os.environ.get(WORKFLOW_DIR_ENV):
        return Path(os.environ[WORKFLOW_DIR_ENV])
    recorded = [r["code"].get("workflow_dir") for r in records.values() if r["code"].get("workflow_dir")]
    if Path("Snakefile").is_file() or not recorded:
        return Path(".").resolve()
    return Path(recorded[-1])


def code_files(rule: str, workflow: str | os.PathLike | None = None) -> dict[str, str]:
    """Relative path → sha256 of every file of rule ``rule``'s code (package files as sppo/...), in the
    workflow directory ``workflow`` (default: ``workflow_dir()``)."""
    return _code_files(rule, str(Path(workflow).resolve() if workflow else workflow_dir()))


@functools.cache
def _code_files(rule: str, root_dir: str) -> dict[str, str]:
    root = Path(root_dir)
    script = root / "scripts" / f"{rule}.py"
    files = {p.relative_to(root).as_posix(): p for p in _workflow_files(root, rule)}
    if script.is_file():
        files[f"scripts/{rule}.py"] = script
        files.update({p.relative_to(PACKAGE_DIR.parent).as_posix(): p for p in package_files(script)})
    return {rel: file_sha256(path) for rel, path in sorted(files.items())}


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.cache
def git_version(workflow: str | None = None) -> dict:
    """Commit and dirtiness of the repository holding the workflow (else the one holding sppo)."""
    for where in (Path(workflow).resolve() if workflow else workflow_dir(), PACKAGE_DIR):
        commit = _git("rev-parse", "HEAD", cwd=where)
        if commit:
            status = _git("status", "--porcelain", cwd=where)
            return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}
    return {"git_commit": None, "git_dirty": None}


def code_version(rule: str, workflow: str | None = None) -> dict:
    """The code of rule ``rule``: git version, file hashes and the workflow directory they are in."""
    root = Path(workflow).resolve() if workflow else workflow_dir()
    files = code_files(rule, root)
    return {**git_version(str(root)), "sha256": tree_sha256(files), "files": files, "workflow_dir": str(root)}
