"""Audit a run: walk each artifact's lineage back to the prompt files and check every link.

Each artifact in the lineage is reported as

- ``ok``: its bytes hash to what its record says, and it is not stale;
- ``modified``: it exists but its hash differs from its record (for a directory: which files);
- ``missing``: its record (or a consumer's record) names it but it is gone;
- ``stale``: it was made by other code (the rule's code hash, see code.py, differs), other params
  (Snakemake's ``--summary`` says "params changed": the params the current config gives differ
  from those it ran with) or other inputs (an input's hash now differs from the one recorded
  when the job read it) than the current ones, or from an artifact that is itself stale;
- ``unrecorded``: a results/ file in the lineage without a provenance record.

Source files outside results/ (the prompts) are checked against the hashes their consumers
recorded. Every hash is recomputed from the bytes; nothing is taken on trust from timestamps.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sppo.provenance import hashing
from sppo.provenance.code import code_files
from sppo.provenance.record import RESULTS, params_sha256

PROBLEMS = ("missing", "modified", "stale", "unrecorded")


@dataclass
class Finding:
    path: str
    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    upstream: str | None = None  # "made from stale X": set when an input is itself stale

    def line(self) -> str:
        head = f"{self.status.upper() if self.status != 'ok' else 'ok':<10} {self.path}"
        reasons = self.reasons + ([self.upstream] if self.upstream else [])
        return head + (": " + "; ".join(reasons) if reasons else "")

    def made_from_stale(self, inputs: list[str]) -> bool:
        """Mark this artifact stale because ``inputs`` are; whether anything changed."""
        upstream = f"made from stale {inputs[0]}" + (f" (+{len(inputs) - 1} more)" if len(inputs) > 1 else "")
        if upstream == self.upstream:
            return False
        self.upstream, self.status = upstream, "stale" if self.status == "ok" else self.status
        return True


@dataclass
class Lineage:
    jobs: dict[str, dict]  # first output → record
    sources: list[str]  # inputs outside results/
    unrecorded: list[str]  # results/ paths no record makes


def lineage(roots: list[str], made: dict[str, dict]) -> Lineage:
    """Everything ``roots`` were made from, following the records' inputs."""
    found = Lineage({}, [], [])
    todo, seen = [os.path.normpath(r) for r in roots], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        record = made.get(path)
        if record is None:
            (found.unrecorded if _under_results(path) else found.sources).append(path)
            continue
        found.jobs.setdefault(next(iter(record["outputs"])), record)
        todo.extend(record["inputs"])
    return found


def _under_results(path: str) -> bool:
    return not os.path.relpath(path, RESULTS).startswith("..")


def params_changed(
    targets: list[str], workflow: Path = Path("."), configfiles: list[str] = ()
) -> tuple[set[str], str | None]:
    """Outputs whose params differ from those the current config gives, as Snakemake sees them.

    ``snakemake --summary`` compares the params Snakemake stored for each output
    (.snakemake/metadata) with those it computes from the current config and rules, and says
    "params changed" (unless a status it ranks higher applies: missing, updated input files, rule
    implementation changed, set of input files changed). ``--list-changes params`` would be the
    obvious call, but Snakemake 9.27 lists every output that has stored params there, changed or
    not. The current config is ``configfiles`` as the run gave them (none: config/config.yaml).
    Returns the outputs and, if Snakemake could not answer, why.
    """
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(workflow / "Snakefile")]
    cmd += (["--configfile", *configfiles] if configfiles else []) + ["--cores", "1", "--summary", *targets]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    if proc.returncode != 0 or not rows or "status" not in rows[0]:
        return set(), (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
    status = rows[0].index("status")
    return {os.path.normpath(row[0]) for row in rows[1:] if row[status] == "params changed"}, None


_VARIANT_PATH = re.compile(r"([a-z][a-z0-9_-]*)/iter[0-9]+(/|$)")


def configured_variants(workflow: Path = Path("."), configfiles: list[str] = ()) -> set[str]:
    """The variant names of the config the audit runs with: ``configfiles`` merged as Snakemake merges
    them (the variants section key by key), or the workflow's config/config.yaml when there are none."""
    names: set[str] = set()
    for path in configfiles or [workflow / "config" / "config.yaml"]:
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}  # JSON is YAML too
        except OSError:
            continue
        names |= set((data.get("variants") or {}) if isinstance(data, dict) else {})
    return names


def foreign_variants(paths, variants: set[str]) -> list[str]:
    """A line for each variant (results/NAME/iterT/…) that ``paths`` hold and ``variants`` lack: its
    artifacts were made with a config this audit was not given, so its params were not checked
    against the run's config (Snakemake's --summary cannot plan a variant the config lacks)."""
    found: dict[str, list[str]] = {}
    for path in paths:
        rel = os.path.relpath(path, RESULTS)
        match = _VARIANT_PATH.match(rel.replace(os.sep, "/"))
        if match and not re.fullmatch(r"iter[0-9]+", match.group(1)) and match.group(1) not in variants:
            found.setdefault(match.group(1), []).append(path)
    have = ", ".join(sorted(variants)) or "none"
    return [
        f"variant {name} ({len(paths)} artifacts, e.g. {paths[0]}) is not in the config given"
        f" (variants: {have}): give the run's config with --configfile"
        for name, paths in sorted(found.items())
    ]


class Auditor:
    """Recomputes each path's hash once, and each rule's current code hash once."""

    def __init__(self, workflow: Path) -> None:
        self._entries: dict[str, dict | None] = {}
        self.workflow = workflow

    def current(self, path: str) -> dict | None:
        if path not in self._entries:
            self._entries[path] = hashing.entry(path)
        return self._entries[path]

    def job_staleness(self, record: dict, changed_params: set[str]) -> list[str]:
        reasons = []
        now, then = code_files(record["rule"], self.workflow), record["code"]["files"]
        changed = sorted(p for p in now.keys() | then.keys() if now.get(p) != then.get(p))
        if changed:
            reasons.append("code changed: " + ", ".join(changed))
        if params_sha256(record["params"]) != record["params_sha256"]:
            reasons.append("record's params do not match its params_sha256")
        if changed_params & set(record["outputs"]):
            reasons.append("params differ from those the current config gives (snakemake --summary)")
        for path, then_entry in record["inputs"].items():
            now_entry = self.current(path)
            if then_entry is None:
                continue
            if now_entry is None:
                reasons.append(f"input {path} is missing")
            elif now_entry["sha256"] != then_entry["sha256"]:
                reasons.append(f"input {path} differs from the one it was made from")
        return reasons

    def check_job(self, record: dict, changed_params: set[str]) -> list[Finding]:
        stale = self.job_staleness(record, changed_params)
        findings = []
        for path, recorded in record["outputs"].items():
            now = self.current(path)
            finding = Finding(path)
            if now is None:
                finding.status, finding.reasons = "missing", ["recorded by rule " + record["rule"]]
            elif diffs := hashing.differences(recorded, now):
                finding.status, finding.reasons = "modified", diffs
            if stale:
                finding.status = finding.status if finding.status != "ok" else "stale"
                finding.reasons += stale
            findings.append(finding)
        return findings

    def check_source(self, path: str, consumers: list[dict]) -> Finding:
        now = self.current(path)
        recorded = {r["inputs"][path]["sha256"] for r in consumers if r["inputs"].get(path)}
        if now is None:
            return Finding(path, "missing", ["source file"])
        if recorded and now["sha256"] not in recorded:
            return Finding(path, "modified", [f"differs from the source file {len(consumers)} job(s) read"])
        return Finding(path)


def audit(
    roots: list[str],
    records: dict,
    made: dict[str, dict],
    workflow: Path = Path("."),
    configfiles: list[str] = (),
) -> tuple[list[Finding], list[str]]:
    """Findings for every artifact in the lineage of ``roots``, and run-wide problems. ``workflow``:
    the directory of the Snakefile, whose code and config (``configfiles``, or its config/config.yaml)
    are the current."""
    found = lineage(roots, made)
    targets = sorted({os.path.normpath(r) for r in roots})
    changed_params, error = params_changed(targets, workflow, configfiles)
    problems = [f"params could not be checked: snakemake --summary failed: {error}"] if error else []
    if not os.path.isdir(".snakemake/metadata"):
        problems.append("params could not be checked: no Snakemake metadata (.snakemake/metadata)")
    auditor = Auditor(workflow)
    findings = [f for record in found.jobs.values() for f in auditor.check_job(record, changed_params)]
    for path in found.sources:
        consumers = [r for r in records.values() if path in r["inputs"]]
        findings.append(auditor.check_source(path, consumers))
    for path in found.unrecorded:
        exists = os.path.exists(path)
        findings.append(Finding(path, "unrecorded" if exists else "missing", ["no provenance record"]))
    propagate_staleness(list(found.jobs.values()), {f.path: f for f in findings})
    problems += foreign_variants(sorted(f.path for f in findings), configured_variants(workflow, configfiles))
    return sorted(findings, key=lambda f: f.path), problems


def propagate_staleness(jobs: list[dict], by_path: dict[str, Finding]) -> None:
    """What was made from a stale artifact is stale too (modified or missing inputs are caught directly)."""
    for _ in range(len(jobs)):  # a fixed point; each pass settles at least one more level
        changed = False
        for record in jobs:
            stale = sorted(p for p in record["inputs"] if p in by_path and by_path[p].status == "stale")
            if stale:
                changed |= any([by_path[out].made_from_stale(stale) for out in record["outputs"]])
        if not changed:
            return
