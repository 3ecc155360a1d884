rule winprob:
    input:
        expand("results/{{v}}iter{{t}}/rank/shard{s}.jsonl", s=range(SHARDS)),
    output:
        "results/{v}iter{t}/winprob/pairs.jsonl",
    log:
        "logs/winprob/{v}iter{t}.log",
    benchmark:
        "logs/benchmarks/winprob/{v}iter{t}.tsv"
    conda:
        DATA_ENV
    params:
        source=config["winprob"]["source"],
        drop_truncated=config["winprob"]["drop_truncated"],
    script:
        "../scripts/winprob.py"
