rule winprob:
    input:
        expand("results/iter{{t}}/rank/shard{s}.jsonl", s=range(SHARDS)),
    output:
        "results/iter{t}/winprob/pairs.jsonl",
    log:
        "logs/winprob/iter{t}.log",
    benchmark:
        "logs/benchmarks/winprob/iter{t}.tsv"
    conda:
        DATA_ENV
    params:
        source=config["winprob"]["source"],
    script:
        "../scripts/winprob.py"
