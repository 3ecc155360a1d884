# The report beyond the summary table: every figure also as a TSV (or JSON, HTML) under
# results/summary/, and in `snakemake --report` by category (captions: report/*.rst).

from pathlib import Path

from sppo.report.runcard import AuditWhenShown


rule report_training:
    input:
        logs=per_policy("logs/train/{v}iter{t}.log", trained()),
    output:
        table="results/summary/training.tsv",
        plot=report(
            "results/summary/training.png",
            caption="../report/training.rst",
            category="Training",
        ),
    log:
        "logs/report/training.log",
    conda:
        DATA_ENV
    params:
        labels=labels(trained()),
    script:
        "../scripts/report_training.py"


rule report_distributions:
    input:
        pairs=per_policy("{samples}/winprob/pairs.jsonl", trained()),
        ranked=[
            path
            for v, t in trained()
            for path in expand(
                "{samples}/rank/shard{s}.jsonl",
                samples=samples_dir(t, v),
                s=range(SHARDS),
            )
        ],
    output:
        table="results/summary/distributions.tsv",
        plot=report(
            "results/summary/distributions.png",
            caption="../report/distributions.rst",
            category="Distributions",
        ),
    log:
        "logs/report/distributions.log",
    conda:
        DATA_ENV
    params:
        labels=labels(trained()),
        shards=SHARDS,
    script:
        "../scripts/report_distributions.py"


rule report_lengths:
    input:
        generated=[
            path
            for v, t in trained()
            for path in expand(
                "{samples}/generate/shard{s}.jsonl",
                samples=samples_dir(t, v),
                s=range(SHARDS),
            )
        ],
        generated_stats=[
            path
            for v, t in trained()
            for path in expand(
                "{samples}/generate/shard{s}.stats.json",
                samples=samples_dir(t, v),
                s=range(SHARDS),
            )
        ],
        judged=[
            path
            for v, t in trained()
            for path in expand(
                "{samples}/rank/shard{s}.judge.json",
                samples=samples_dir(t, v),
                s=range(SHARDS),
            )
        ],
        answers=evaluations(ITERATIONS, "results/{v}iter{t}/evaluate/answers.jsonl"),
        answer_stats=evaluations(
            ITERATIONS, "results/{v}iter{t}/evaluate/answers.stats.json"
        ),
        tokenizer=policy_files(0),
    output:
        table="results/summary/lengths.tsv",
        plot=report(
            "results/summary/lengths.png",
            caption="../report/lengths.rst",
            category="Lengths",
        ),
    log:
        "logs/report/lengths.log",
    conda:
        MODEL_ENV
    params:
        labels=labels(trained()),
        answer_labels=labels([("", 0)] + trained()),
        shards=SHARDS,
        tokenizer=lambda wildcards: policy(0),  # a function: π_0 may be a hub id, not a file
        model_config=config["model"],
        limits=[limits(v) for v, t in trained()],
    script:
        "../scripts/report_lengths.py"


rule report_resources:
    input:
        benchmarks=benchmark_files(),
    output:
        table="results/summary/resources.tsv",
        plot=report(
            "results/summary/resources.png",
            caption="../report/resources.rst",
            category="Resources",
        ),
    log:
        "logs/report/resources.log",
    conda:
        DATA_ENV
    script:
        "../scripts/report_resources.py"


rule report_samples:
    input:
        answers=evaluations(ITERATIONS, "results/{v}iter{t}/evaluate/answers.jsonl"),
        annotations=evaluations(
            ITERATIONS, "results/{v}iter{t}/evaluate/annotations.json"
        ),
    output:
        table="results/summary/samples.tsv",
        page=report(
            "results/summary/samples.html",
            caption="../report/samples.rst",
            category="Samples",
        ),
    log:
        "logs/report/samples.log",
    conda:
        DATA_ENV
    params:
        labels=labels([("", 0)] + trained()),
        n=config["report"]["samples"],
        seed=config["seed"],
    script:
        "../scripts/report_samples.py"


rule report_judges:
    input:
        annotations=[
            f"{judged_dir(judge, v, t)}/annotations.json"
            for v, t in trained()
            for judge in compared_judges()
        ],
        metrics=[
            f"{judged_dir(judge, v, t)}/metrics.json"
            for v, t in trained()
            for judge in compared_judges()
        ],
    output:
        table="results/summary/judges.tsv",
        page=report(
            "results/summary/judges.html",
            caption="../report/judges.rst",
            category="Judges",
        ),
        plot=report(
            "results/summary/judges.png",
            caption="../report/judges.rst",
            category="Judges",
        ),
    log:
        "logs/report/judges.log",
    conda:
        DATA_ENV
    params:
        labels=[[v[:-1], t, judge] for v, t in trained() for judge in compared_judges()],
        train=config["judge"]["train"],
        eval=config["judge"]["eval"],
    script:
        "../scripts/report_judges.py"


rule run_card:
    input:
        iteration_outputs(ITERATIONS) + report_outputs(),
    output:
        card="results/summary/run_card.json",
        page=report(
            "results/summary/run_card.html",
            caption="../report/run_card.rst",
            category="Run card",
        ),
    log:
        "logs/report/run_card.log",
    conda:
        DATA_ENV
    params:
        # A Path, which Snakemake leaves out of its params check: a moved run reruns nothing.
        snakefile=Path(SNAKEFILE),
        config=config,
        # Called by the caption (report/run_card.rst) when `snakemake --report` builds the report.
        audit=AuditWhenShown(Path(SNAKEFILE), config),
    script:
        "../scripts/report_run_card.py"
