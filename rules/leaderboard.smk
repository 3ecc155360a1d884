rule leaderboard:
    input:
        model=evaluated_policy_files,
        task_files=leaderboard_task_files(),
    output:
        "results/{v}iter{t}/leaderboard/results.json",
    log:
        "logs/leaderboard/{v}iter{t}.log",
    benchmark:
        "logs/benchmarks/leaderboard/{v}iter{t}.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        **gpu_resources("leaderboard"),
    params:
        model=evaluated_policy,
        model_config=config["model"],
        name=lambda wildcards: policy_name(wildcards.t, wildcards.v),
        settings=leaderboard_settings(),
    script:
        "../scripts/leaderboard.py"
