rule evaluate_answers:
    input:
        prompts="results/split/eval.jsonl",
        model=evaluated_policy_files,
    output:
        answers="results/{v}iter{t}/evaluate/answers.jsonl",
        alpaca_eval="results/{v}iter{t}/evaluate/alpaca_eval.json",
        stats="results/{v}iter{t}/evaluate/answers.stats.json",
    log:
        "logs/evaluate/{v}iter{t}/answers.log",
    benchmark:
        "logs/benchmarks/evaluate_answers/{v}iter{t}.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        **gpu_resources("evaluate_answers"),
    params:
        model=evaluated_policy,
        model_config=config["model"],
        name=lambda wildcards: policy_name(wildcards.t, wildcards.v),
        settings=answer_settings(),
        seed=config["seed"],
    script:
        "../scripts/evaluate_answers.py"


rule evaluate:
    input:
        answers="results/{v}iter{t}/evaluate/answers.jsonl",
        baseline="results/iter0/evaluate/answers.jsonl",
    output:
        metrics="results/{v}iter{t}/evaluate/metrics.json",
        annotations="results/{v}iter{t}/evaluate/annotations.json",
    log:
        "logs/evaluate/{v}iter{t}/metrics.log",
    benchmark:
        "logs/benchmarks/evaluate/{v}iter{t}_metrics.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        **gpu_resources("evaluate"),
    params:
        judge=judge_settings("eval"),
        name=lambda wildcards: policy_name(wildcards.t, wildcards.v),
        base_name=policy_name(0),
        bootstrap_samples=config["evaluate"]["bootstrap_samples"],
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"


# An independent judge (evaluate.extra_judges), or the training judge, on the same answers as rule
# evaluate: the same annotations and metrics, under evaluate/judges/NAME/ (sppo/report/judges.py).
rule evaluate_judge:
    input:
        answers="results/{v}iter{t}/evaluate/answers.jsonl",
        baseline="results/iter0/evaluate/answers.jsonl",
    output:
        metrics="results/{v}iter{t}/evaluate/judges/{judge}/metrics.json",
        annotations="results/{v}iter{t}/evaluate/judges/{judge}/annotations.json",
    log:
        "logs/evaluate/{v}iter{t}/judge_{judge}.log",
    benchmark:
        "logs/benchmarks/evaluate_judge/{v}iter{t}_{judge}.tsv"
    wildcard_constraints:
        judge="|".join(USES_GPU),
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        gpu=named_judge_gpus,
        tasks_per_gpu=0,
    params:
        judge=named_judge_settings,
        name=lambda wildcards: policy_name(wildcards.t, wildcards.v),
        base_name=policy_name(0),
        bootstrap_samples=config["evaluate"]["bootstrap_samples"],
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"


# AlpacaEval (alpaca_eval.enabled): the instructions (fetched from the hub, or a local file), which
# π_t answers, and alpaca_eval's own evaluate judges them against the reference outputs
# (sppo/alpaca_eval.py).
rule evaluate_alpaca_instructions:
    input:
        local_alpaca_instructions(),
    output:
        instructions="results/evaluate/alpaca/instructions.json",
    log:
        "logs/evaluate/alpaca_instructions.log",
    conda:
        DATA_ENV
    params:
        source=config["alpaca_eval"]["instructions"],
    script:
        "../scripts/evaluate_alpaca_instructions.py"


rule evaluate_alpaca_answers:
    input:
        instructions="results/evaluate/alpaca/instructions.json",
        model=evaluated_policy_files,
    output:
        outputs="results/{v}iter{t}/evaluate/alpaca/outputs.json",
    log:
        "logs/evaluate/{v}iter{t}/alpaca_answers.log",
    benchmark:
        "logs/benchmarks/evaluate_alpaca_answers/{v}iter{t}.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        **gpu_resources("evaluate_answers"),
    params:
        model=evaluated_policy,
        model_config=config["model"],
        name=lambda wildcards: policy_name(wildcards.t, wildcards.v),
        settings=alpaca_answer_settings(),
        seed=config["seed"],
    script:
        "../scripts/evaluate_alpaca_answers.py"


rule evaluate_alpaca:
    input:
        outputs="results/{v}iter{t}/evaluate/alpaca/outputs.json",
        instructions="results/evaluate/alpaca/instructions.json",
    output:
        metrics="results/{v}iter{t}/evaluate/alpaca/metrics.json",
        annotations="results/{v}iter{t}/evaluate/alpaca/annotations.json",
    log:
        "logs/evaluate/{v}iter{t}/alpaca.log",
    benchmark:
        "logs/benchmarks/evaluate_alpaca/{v}iter{t}.tsv"
    conda:
        MODEL_ENV
    params:
        settings={k: v for k, v in config["alpaca_eval"].items() if k != "enabled"},
        name=lambda wildcards: policy_name(wildcards.t, wildcards.v),
    script:
        "../scripts/evaluate_alpaca.py"


rule summary:
    input:
        metrics=evaluations(ITERATIONS, "results/{v}iter{t}/evaluate/metrics.json"),
        leaderboard=leaderboard_results(ITERATIONS),
        alpaca=alpaca_results(ITERATIONS),
    output:
        table=report(
            "results/summary/metrics.tsv",
            caption="../report/summary.rst",
            category="Summary",
        ),
        page=report(
            "results/summary/metrics.html",
            caption="../report/summary.rst",
            category="Summary",
        ),
        plot=report(
            "results/summary/winrate.png",
            caption="../report/winrate.rst",
            category="Summary",
        ),
        length_plot=report(
            "results/summary/length_winrate.png",
            caption="../report/length_winrate.rst",
            category="Summary",
        ),
    log:
        "logs/summary/summary.log",
    conda:
        DATA_ENV
    params:
        variants=[v[:-1] for v in VARIANTS],  # names; [""] for one run
        iterations=ITERATIONS,
    script:
        "../scripts/summary.py"
