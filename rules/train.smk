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
    wildcard_constraints:
        t=r"[1-9]\d*",  # π_0 comes from rule basemodel (or the hub), never from here
    conda:
        MODEL_ENV
    threads: config["threads"] * config["train"]["num_processes"]
    resources:
        **train_resources(),
    params:
        model=parent_policy,
        launcher=train_launcher(),
        settings_json=quoted_json(config["train"]),
        model_config_json=quoted_json(config["model"]),
        seed=config["seed"],
        threads=config["threads"],
    shell:
        "started=$(date -u +%Y-%m-%dT%H:%M:%S+00:00); "
        "{params.launcher} scripts/train.py --model {params.model} --pairs {input.pairs}"
        " --out {output.model} --settings {params.settings_json}"
        " --model-config {params.model_config_json} --seed {params.seed}"
        " --threads {params.threads} > {log} 2>&1"
        " && python -m sppo.provenance record --rule train --started $started --threads {threads}"
        " --log {log:q} --input {input:q} --output {output:q} --wildcard t={wildcards.t}"
        " --param model={params.model:q} --param launcher={params.launcher:q}"
        " --json-param settings={params.settings_json} --json-param model_config={params.model_config_json}"
        " --json-param seed={params.seed} --json-param threads={params.threads} >> {log} 2>&1"
