rule split:
    input:
        # the snorkel source reads through `datasets` (a hub id or a local dataset directory)
        prompts=(
            [config["prompts"]["path"]]
            if config["prompts"]["source"] == "local"
            else []
        ),
    output:
        parts=expand("results/split/iter{t}.jsonl", t=range(1, ITERATIONS + 1)),
        eval="results/split/eval.jsonl",
        stats="results/split/stats.json",
    log:
        "logs/split/split.log",
    benchmark:
        "logs/benchmarks/split/split.tsv"
    conda:
        DATA_ENV
    params:
        prompts=config["prompts"],
        split=config["split"],
        seed=config["seed"],
    script:
        "../scripts/split.py"
