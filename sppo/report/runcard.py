"""The run card: the resolved config, the provenance audit's verdict, and, as the jobs' provenance
records have them, the code commit, package versions and the machines (host, GPUs, SLURM job)."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import tempfile

from sppo import io


def run_audit(snakefile: str | os.PathLike, config: dict, artifacts: list[str]) -> tuple[int, str]:
    """`python -m sppo.provenance audit` of ``artifacts`` with this run's Snakefile and whole config:
    its exit status (0: every artifact is current) and its report."""
    with tempfile.TemporaryDirectory() as tmp:
        configfile = os.path.join(tmp, "config.json")
        io.write_json(configfile, config)
        cmd = [sys.executable, "-m", "sppo.provenance", "audit", "--snakefile", str(snakefile)]
        proc = subprocess.run(
            [*cmd, "--configfile", configfile, *artifacts],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return proc.returncode, proc.stdout


def _grouped(records: dict, field) -> list[dict]:
    """The distinct values of ``field(record)`` with the rules whose jobs recorded each and how many."""
    groups: dict[str, dict] = {}
    for rec in records.values():
        value = field(rec)
        key = json.dumps(value, sort_keys=True)
        entry = groups.setdefault(key, {"value": value, "jobs": 0, "rules": []})
        entry["jobs"] += 1
        if rec["rule"] not in entry["rules"]:
            entry["rules"].append(rec["rule"])
    return list(groups.values())


def build(config: dict, records: dict, audit: tuple[int, str]) -> dict:
    """The card from the validated config, the run's provenance records (sppo.provenance.record.load_all)
    and :func:`run_audit`'s result."""
    rc, report = audit
    return {
        "audit": {"passed": rc == 0, "exit_status": rc, "report": report},
        "code": _grouped(records, lambda r: {k: r["code"].get(k) for k in ("git_commit", "git_dirty")}),
        "software": _grouped(records, lambda r: r["software"]),
        "machines": _grouped(records, lambda r: r["host"]),
        "jobs": len(records),
        "config": config,
    }


def to_html(card: dict) -> str:
    """The card as a page: the audit first, then code, software and machines, then the config."""

    def block(title: str, value) -> str:
        text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
        return f"<h2>{html.escape(title)}</h2><pre>{html.escape(text)}</pre>"

    verdict = "passed" if card["audit"]["passed"] else f"FAILED (exit status {card['audit']['exit_status']})"
    parts = [
        f"<h1>Run card</h1><p id=audit>provenance audit: <b>{verdict}</b>"
        f" over {card['jobs']} recorded jobs</p>",
        block("audit report", card["audit"]["report"]),
        block("code", card["code"]),
        block("software", card["software"]),
        block("machines", card["machines"]),
        block("config (resolved)", card["config"]),
    ]
    style = (
        "body{font-family:sans-serif;font-size:13px} pre{background:#f6f6f6;padding:6px;white-space:pre-wrap}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset=utf-8><title>Run card</title><style>{style}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )
