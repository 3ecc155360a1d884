# The script is found beside the Snakefile, not in the working directory (snakemake --directory).
TRAIN_SCRIPT = os.path.join(workflow.basedir, "scripts", "train.py")
# python, torchrun or srun … torchrun: it follows from the train section, a param already.
TRAIN_LAUNCHER = train_launcher()


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
        settings=quoted_json(config["train"]),
        model_config=quoted_json(config["model"]),
        seed=config["seed"],
        threads=config["threads"],
    # A shell rule, for the launcher; process 0 writes the job's provenance record (sppo/train.py).
    shell:
        "{TRAIN_LAUNCHER} {TRAIN_SCRIPT:q} --pairs {input.pairs:q} --out {output.model:q}"
        " --model {params.model:q} --settings {params.settings} --model-config {params.model_config}"
        " --seed {params.seed} --threads {params.threads}"
        " --log {log:q} --wildcard t={wildcards.t} --job-threads {threads} > {log:q} 2>&1"
