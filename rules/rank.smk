rule rank:
    input:
        generated="results/{v}iter{t}/generate/shard{s}.jsonl",
        tokenizer=judge_prompt_files,
    output:
        ranked="results/{v}iter{t}/rank/shard{s}.jsonl",
        judge="results/{v}iter{t}/rank/shard{s}.judge.json",
    log:
        "logs/rank/{v}iter{t}/shard{s}.log",
    benchmark:
        "logs/benchmarks/rank/{v}iter{t}/shard{s}.tsv"
    conda:
        MODEL_ENV
    threads: config["threads"]
    resources:
        **gpu_resources("rank"),
    params:
        judge=judge_settings("train"),
        chunk_prompts=config["judge"]["chunk_prompts"],
        prompt=judge_prompt,
    script:
        "../scripts/rank.py"
