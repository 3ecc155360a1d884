rule basemodel:
    input:
        prompts=config["prompts"]["path"],
    output:
        model=directory("results/iter0/model"),
    log:
        "logs/basemodel/basemodel.log",
    benchmark:
        "logs/benchmarks/basemodel/basemodel.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    params:
        settings=config["tiny_model"],
        column=config["prompts"]["column"],
        seed=config["seed"],
    script:
        "../scripts/basemodel.py"
