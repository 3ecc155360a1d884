from pathlib import Path


localrules:
    fetch,


# Target `fetch`: run it first, where the hub is reachable (sppo/fetch.py); the jobs then read the
# hub cache only (hub_offline).
rule fetch:
    output:
        FETCH_RECORD,
    log:
        "logs/fetch/fetch.log",
    conda:
        DATA_ENV
    params:
        script=Path(WORKFLOW_DIR, "scripts", "fetch.py"),
        plan=quoted_json(FETCH_PLAN),
    # A shell rule: the fetch is online even where the jobs are offline (HF_HUB_OFFLINE=1).
    shell:
        "HF_HUB_OFFLINE=0 python {params.script:q} --plan {params.plan} --out {output:q} > {log:q} 2>&1"
