rule reflogp:
    input:
        pairs=lambda wildcards: f"{samples(wildcards)}/winprob/pairs.jsonl",
        model=reference_policy_files,
    output:
        "results/{v}iter{t}/reflogp/pairs.jsonl",
    log:
        "logs/reflogp/{v}iter{t}.log",
    benchmark:
        "logs/benchmarks/reflogp/{v}iter{t}.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        **gpu_resources("reflogp"),
    params:
        model=reference_policy,
        model_config=config["model"],
        settings=reflogp_settings,
    script:
        "../scripts/reflogp.py"
