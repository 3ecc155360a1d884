from pathlib import Path


rule train:
    input:
        pairs="results/{v}iter{t}/reflogp/pairs.jsonl",
        model=parent_policy_files,
    # Checkpoints go to results/{v}iter{t}/.model.checkpoints, deliberately not an output: Snakemake
    # deletes a job's outputs before it runs and after it fails, and a rerun resumes from them
    # (sppo/resume.py). The job removes them once π_t is published.
    output:
        model=directory("results/{v}iter{t}/model"),
    log:
        "logs/train/{v}iter{t}.log",
    benchmark:
        "logs/benchmarks/train/{v}iter{t}.tsv"
    wildcard_constraints:
        t=r"[1-9]\d*",  # π_0 comes from rule basemodel (or the hub), never from here
    conda:
        MODEL_ENV
    threads: config["threads"] * config["train"]["num_processes"]
    resources:
        **train_resources(),
    params:
        # Beside the Snakefile, whatever the working directory. A Path, which Snakemake leaves out
        # of its params check: a moved checkout reruns nothing.
        script=Path(WORKFLOW_DIR, "scripts", "train.py"),
        gpu_job=gpu_job_prefix("train"),
        launcher=train_launcher(),
        model=parent_policy,
        settings=lambda wildcards: quoted_json(train_settings(wildcards)),
        model_config=quoted_json(config["model"]),
        seed=config["seed"],
        threads=config["threads"],
    # A shell rule, for its launcher. Process 0 writes the job's provenance record (sppo/train.py).
    shell:
        "{params.gpu_job}{params.launcher} {params.script:q} --pairs {input.pairs:q} --out {output.model:q}"
        " --launcher {params.launcher:q} --model {params.model:q} --settings {params.settings}"
        " --model-config {params.model_config} --seed {params.seed} --threads {params.threads}"
        " --log-file {log:q} --wildcard v={wildcards.v:q} --wildcard t={wildcards.t}"
        " --job-threads {threads} > {log:q} 2>&1"
