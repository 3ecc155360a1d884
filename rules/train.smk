rule train:
    input:
        pairs="results/iter{t}/reflogp/pairs.jsonl",
        model=parent_policy_files,
    output:
        model=directory("results/iter{t}/model"),
    log:
        "logs/train/iter{t}.log",
    benchmark:
        "logs/benchmarks/train/iter{t}.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"] * config["train"]["num_processes"]
    params:
        model=parent_policy,
        launcher=train_launcher(),
        settings=config["train"],
        settings_json=quoted_json(config["train"]),
        model_config_json=quoted_json(config["model"]),
        seed=config["seed"],
        threads=config["threads"],
    shell:
        "{params.launcher} scripts/train.py --model {params.model} --pairs {input.pairs}"
        " --out {output.model} --settings {params.settings_json}"
        " --model-config {params.model_config_json} --seed {params.seed}"
        " --threads {params.threads} > {log} 2>&1"
