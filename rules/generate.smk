rule generate:
    input:
        prompts="results/split/iter{t}.jsonl",
        model=parent_policy_files,
    output:
        samples="results/{v}iter{t}/generate/shard{s}.jsonl",
        stats="results/{v}iter{t}/generate/shard{s}.stats.json",
    log:
        "logs/generate/{v}iter{t}/shard{s}.log",
    benchmark:
        "logs/benchmarks/generate/{v}iter{t}/shard{s}.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        **gpu_resources("generate"),
    params:
        model=parent_policy,
        model_config=config["model"],
        settings=config["generate"],
        shards=SHARDS,
    script:
        "../scripts/generate.py"
