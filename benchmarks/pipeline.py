"""Time every stage and the whole default iter3 run (the offline demo), in a fresh copy of the workflow.

    ./run python -m benchmarks.pipeline [--cores N] [--target iter3] [--keep DIR] [--configfile FILE ...]

(``--configfile config/config.yaml config/compare.yaml``: the variants side by side.)

Prints the wall-clock time of `snakemake --cores N iter3` from nothing, the time per stage from the
rules' `benchmark:` files (sum over the stage's jobs and the number of jobs), the machine, and the
win rates the run measured.
"""

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ["Snakefile", "rules", "scripts", "config", "data", "envs", "report", "profiles"]


def copy_workflow(dest: Path) -> None:
    for name in PARTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        elif src.exists():
            shutil.copy2(src, dest / name)


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def stage_times(workdir: Path) -> dict[str, tuple[float, int]]:
    totals: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for path in sorted((workdir / "logs" / "benchmarks").rglob("*.tsv")):
        stage = path.relative_to(workdir / "logs" / "benchmarks").parts[0]
        with open(path) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        totals[stage][0] += float(row["s"])
        totals[stage][1] += 1
    return {k: (v[0], v[1]) for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default=str(os.cpu_count()))
    parser.add_argument("--target", default="iter3")
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it")
    parser.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        help="config files, relative to the workflow (none: config/config.yaml)",
    )
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="sppo-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    copy_workflow(workdir)
    started = time.perf_counter()
    extra = ["--configfile", *args.configfile] if args.configfile else []
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", args.cores, args.target, *extra, "--quiet", "all"],
        cwd=workdir,
        check=True,
    )
    wall = time.perf_counter() - started
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, snakemake --cores {args.cores}"
    )
    given = f" with {' '.join(args.configfile)}" if extra else ""
    print(f"whole {args.target} from nothing{given}: {wall:.1f} s wall")
    print(f"{'stage':<18}{'jobs':>6}{'seconds (sum over jobs)':>26}")
    for stage, (seconds, jobs) in sorted(stage_times(workdir).items(), key=lambda kv: -kv[1][0]):
        print(f"{stage:<18}{jobs:>6}{seconds:>26.1f}")
    summary = workdir / "results" / "summary" / "metrics.tsv"
    if summary.exists():
        print(summary.read_text(), end="")
    if not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
