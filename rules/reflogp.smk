rule reflogp:
    input:
        pairs="results/iter{t}/winprob/pairs.jsonl",
        model=parent_policy_files,
    output:
        "results/iter{t}/reflogp/pairs.jsonl",
    log:
        "logs/reflogp/iter{t}.log",
    benchmark:
        "logs/benchmarks/reflogp/iter{t}.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        **gpu_resources("reflogp"),
    params:
        model=parent_policy,
        model_config=config["model"],
        settings=reflogp_settings(),
    script:
        "../scripts/reflogp.py"
