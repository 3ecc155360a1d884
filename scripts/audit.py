"""Audit the final target's artifacts against their provenance records. Run by rule audit.

The audit asks `snakemake --summary` whether params changed; it gets this run's Snakefile and its
whole config (a --configfile or --config given to this run included) as a config file.
"""

import sys

from sppo.report.runcard import run_audit

snakemake = snakemake  # noqa: F821 (provided by Snakemake)

rc, report = run_audit(snakemake.params.snakefile, snakemake.params.config, snakemake.params.artifacts)
with open(snakemake.log[0], "w", encoding="utf-8") as log:
    log.write(report)
print(report, end="")  # on the terminal too
sys.exit(rc)
