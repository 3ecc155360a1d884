# The run's configuration (sppo/runconfig.py). Before its first job a run claims results/ for its
# config files, writing results/config.yaml (their names and the resolved config), or stops
# because results/ holds another configuration's run. Not for dry runs (they write nothing), nor
# inside a cluster job (its run claimed results/ when it started), nor for targets that only read
# (show_config, audit).
READ_ONLY_TARGETS = {"show_config", "audit"}


onstart:
    targets = {job.rule.name for job in workflow.dag.targetjobs}
    if not workflow.remote_exec and not targets <= READ_ONLY_TARGETS:
        runconfig.claim(RUN_CONFIG_NAMES, config)


# `snakemake --cores 1 show_config --configfile FILE` prints the config a run of FILE would use:
# every key, with the schema's defaults filled in. No output, so it runs every time it is asked for.
rule show_config:
    log:
        "logs/show_config.log",
    localrule: True
    conda:
        DATA_ENV
    params:
        text=runconfig.render(RUN_CONFIG_NAMES, config),
    shell:
        "tee {log:q} <<'EOF'\n{params.text}EOF"
