# Provenance audit: `snakemake --cores 1 audit` checks every artifact the final target asks for
# (target_files, as rule iterN in the Snakefile) and its whole lineage against the provenance
# records (sppo/provenance/audit.py), with the config this run was given (--configfile, --config).
# No input (it audits what exists, it builds nothing) and no output, so it runs every time
# it is asked for, and never as part of the default target.


rule audit:
    log:
        "logs/audit/audit.log",
    conda:
        DATA_ENV
    params:
        artifacts=target_files(ITERATIONS),
        snakefile=SNAKEFILE,
        config=config,
    script:
        "../scripts/audit.py"
