rule reflogp:
    input:
        pairs=lambda wildcards: f"{samples(wildcards)}/winprob/pairs.jsonl",
        model=reference_policy_files,
    output:
        "results/{v}iter{t}/reflogp/shard{s}.jsonl",
    log:
        "logs/reflogp/{v}iter{t}/shard{s}.log",
    benchmark:
        "logs/benchmarks/reflogp/{v}iter{t}/shard{s}.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        **gpu_resources("reflogp"),
    params:
        model=reference_policy,
        model_config=config["model"],
        settings=reflogp_settings,
        shards=SHARDS,
    script:
        "../scripts/reflogp.py"


# The shards in order, checked against the pairs: what train reads.
rule reflogp_merge:
    input:
        pairs=lambda wildcards: f"{samples(wildcards)}/winprob/pairs.jsonl",
        shards=expand("results/{{v}}iter{{t}}/reflogp/shard{s}.jsonl", s=range(SHARDS)),
    output:
        "results/{v}iter{t}/reflogp/pairs.jsonl",
    log:
        "logs/reflogp_merge/{v}iter{t}.log",
    conda:
        DATA_ENV
    script:
        "../scripts/reflogp_merge.py"
