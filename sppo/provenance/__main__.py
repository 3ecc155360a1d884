"""Provenance of a run, from its working directory:

python -m sppo.provenance audit ARTIFACT ...           check each artifact's lineage (exit 1 on problems)
python -m sppo.provenance audit --tree ARTIFACT        print an artifact's lineage as a tree
python -m sppo.provenance audit --dot ARTIFACT OUT     draw it (OUT: .dot/.gv text, - for stdout, .png/.svg)
python -m sppo.provenance crate OUT_DIR [--validate]   export a Provenance Run Crate of the run
"""

from __future__ import annotations

import argparse
import sys
import time

from sppo.provenance import audit, code, graph, record


def run_audit(args) -> int:
    made = record.producers(records := record.load_all())
    if args.tree:
        print("\n".join(graph.tree(args.tree, made)))
        return 0
    if args.dot:
        graph.draw(args.dot[0], made, args.dot[1])
        return 0
    if not args.artifacts:
        raise SystemExit(
            "audit: name the artifacts to check, or run `snakemake --cores 1 audit` (with the run's own"
            " --configfile and --config), which checks what the final target asks for"
        )
    start = time.perf_counter()
    workflow = code.workflow_of(records, args.snakefile)
    findings, problems = audit.audit(args.artifacts, records, made, workflow, args.configfile)
    for finding in findings:
        if finding.status != "ok" or not args.quiet:
            print(finding.line())
    for problem in problems:
        print(f"PROBLEM    {problem}")
    counts = {s: sum(f.status == s for f in findings) for s in ("ok", *audit.PROBLEMS)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"audit: {len(findings)} artifacts: {summary} ({time.perf_counter() - start:.1f} s)")
    return 1 if problems or counts["ok"] != len(findings) else 0


def run_crate(args) -> int:
    from sppo.provenance import crate

    out = crate.export(args.out_dir)
    print(f"Provenance Run Crate written to {out}")
    if args.validate:
        issues = crate.validate(out)
        for issue in issues:
            print(f"INVALID    {issue}")
        print(
            "crate valid (provenance-run-crate-0.5)" if not issues else f"{len(issues)} validation issue(s)"
        )
        return 1 if issues else 0
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sppo.provenance", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("audit", help="check artifacts against their provenance records")
    p.add_argument(
        "artifacts", nargs="*", help="what to check, with its lineage (`snakemake audit`: the final target)"
    )
    p.add_argument(
        "--snakefile",
        help="the workflow's Snakefile (default: the one the run's records name, else ./Snakefile)",
    )
    p.add_argument(
        "--configfile",
        action="append",
        default=[],
        help="the run's config file(s), as given to snakemake (default: config/config.yaml, the toy)",
    )
    p.add_argument("--tree", metavar="ARTIFACT", help="print the lineage of ARTIFACT and stop")
    p.add_argument(
        "--dot", nargs=2, metavar=("ARTIFACT", "OUT"), help="draw the lineage of ARTIFACT and stop"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.set_defaults(func=run_audit)

    p = commands.add_parser("crate", help="export a Workflow Run RO-Crate (Provenance Run Crate 0.5)")
    p.add_argument("out_dir")
    p.add_argument("--validate", action="store_true", help="validate it with roc-validator (offline)")
    p.set_defaults(func=run_crate)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
