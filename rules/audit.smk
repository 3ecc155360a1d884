# Provenance audit: `snakemake --cores 1 audit` checks every artifact the final iteration's
# summary and metrics depend on against its provenance record (sppo/provenance/audit.py).
# No input (it audits what exists, it builds nothing) and no output, so it runs every time
# it is asked for, and never as part of the default target.


rule audit:
    log:
        "logs/audit/audit.log",
    conda:
        DATA_ENV
    shell:
        "python -m sppo.provenance audit 2>&1 | tee {log}"
