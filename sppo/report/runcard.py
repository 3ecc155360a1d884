"""The run card: the resolved config, the provenance audit's verdict, and, as the jobs' provenance
records have them, the code commit, package versions and the machines (host, GPUs, SLURM job)."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime

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


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def audit_summary(rc: int, report: str, at: str, problems_shown: int = 10) -> str:
    """The audit's verdict as reStructuredText: passed or FAILED, when, the audit's count line, and
    its first ``problems_shown`` lines that are not ok (a literal block)."""
    lines = report.splitlines()
    counts = next((line for line in reversed(lines) if line.startswith("audit: ")), "no count line")
    verdict = "**passed**" if rc == 0 else f"**FAILED** (exit status {rc})"
    text = f"{verdict} at {at} (UTC): ``{counts}``"
    bad = [line for line in lines if not line.startswith(("ok ", "audit: "))][:problems_shown]
    if bad:
        text += "\n\n::\n\n" + "\n".join(f"    {line}" for line in bad) + "\n"
    return text


class AuditWhenShown:
    """The provenance audit, run when ``snakemake --report`` shows the run card.

    A param of rule run_card that its caption (report/run_card.rst) calls: Snakemake renders
    captions when it builds the report, so the verdict there is that of the artifacts as they are
    then, not as they were when the card was built. Not a builtin type, so Snakemake leaves it out
    of its params check; its repr is constant, so the provenance record's params do not vary.
    """

    def __init__(self, snakefile: str | os.PathLike, config: dict) -> None:
        self.snakefile, self.config = snakefile, config

    def __repr__(self) -> str:
        return "AuditWhenShown()"

    def now(self, artifacts) -> str:
        at = utc_now()
        rc, report = run_audit(self.snakefile, self.config, [str(a) for a in artifacts])
        return audit_summary(rc, report, at)


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


def build(config: dict, records: dict, audit: tuple[int, str], audited_at: str) -> dict:
    """The card from the validated config, the run's provenance records (sppo.provenance.record.load_all)
    and :func:`run_audit`'s result, run at ``audited_at`` (UTC, ISO 8601)."""
    rc, report = audit
    return {
        "audit": {"passed": rc == 0, "exit_status": rc, "report": report, "at": audited_at},
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

    audit = card["audit"]
    verdict = "passed" if audit["passed"] else f"FAILED (exit status {audit['exit_status']})"
    # The card is built once, with the run; the report shows it as it was then. So the verdict says
    # when it was reached and that it does not cover later edits (the run's next `snakemake` rebuilds
    # the card after an input changed; `snakemake audit` checks at any time).
    parts = [
        f"<h1>Run card</h1><p id=audit>provenance audit: <b>{verdict}</b>"
        f" over {card['jobs']} recorded jobs, at {html.escape(audit['at'])} (UTC) when this card was built."
        " It does not cover an artifact changed after that: <code>snakemake --cores 1 audit</code> checks"
        " them as they are now.</p>",
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
