"""Audit the final target's artifacts against their provenance records. Run by rule audit.

The audit asks `snakemake --summary` whether params changed; it gets this run's Snakefile and its
whole config (a --configfile or --config given to this run included) as a config file.
"""

import os
import subprocess
import sys
import tempfile

from sppo import io

snakemake = snakemake  # noqa: F821 (provided by Snakemake)

with tempfile.TemporaryDirectory() as tmp:
    configfile = os.path.join(tmp, "config.json")
    io.write_json(configfile, snakemake.params.config)
    cmd = [sys.executable, "-m", "sppo.provenance", "audit", "--snakefile", snakemake.params.snakefile]
    cmd += ["--configfile", configfile, *snakemake.params.artifacts]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
with open(snakemake.log[0], "w", encoding="utf-8") as log:
    log.write(proc.stdout)
print(proc.stdout, end="")  # on the terminal too
sys.exit(proc.returncode)
