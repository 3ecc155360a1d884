"""The paper's recipes (config/recipes/*.yaml): the authors' settings, their full iter3 DAG, and the
SLURM resources profiles/slurm gives its jobs; multi-node training's launcher and sbatch flags.

Dry runs only: the hub base model is no workflow input and the snorkel split needs no data to plan.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO, merge_config, snakemake
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string

from sppo.config import validate

RECIPES = {
    # name: (base model, per-device batch, schedule epochs) — 8 processes, global batch 64, stop at 1
    "gemma-2-9b-it": ("google/gemma-2-9b-it", 4, 1),
    "mistral-7b-instruct-v0.2": ("mistralai/Mistral-7B-Instruct-v0.2", 8, 18),
    "llama-3-8b-instruct": ("meta-llama/Meta-Llama-3-8B-Instruct", 8, 6),
}
# iter3 with 8 shards: jobs per rule (π_0 is a hub id, so no basemodel job)
ITER3_JOBS = {
    "split": 1,
    "generate": 24,
    "rank": 24,
    "winprob": 3,
    "reflogp": 24,
    "reflogp_merge": 3,
    "train": 3,
    "evaluate_answers": 4,
    "evaluate": 4,
}
# rule: (gpu, threads, mem_mb, runtime in minutes at attempt 1) under profiles/slurm
RESOURCES = {
    "generate": (1, 8, 64000, 480),
    "rank": (1, 8, 32000, 60),
    "reflogp": (1, 8, 64000, 120),
    "train": (8, 64, 480000, 180),
    "evaluate_answers": (1, 8, 64000, 120),
    "evaluate": (1, 8, 32000, 30),
}


def raw_config(*files) -> dict:
    """config/config.yaml with the given config files merged over it, as Snakemake does."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for path in files:
        merge_config(config, yaml.safe_load(path.read_text()))
    return config


def recipe(name: str):
    return REPO / "config" / "recipes" / f"{name}.yaml"


def dry_run_jobs(text: str) -> list[dict]:
    """The jobs a dry run prints: rule, threads, resources and shell command of each."""
    jobs = []
    for block in re.split(r"\n(?=\[[A-Z][a-z]{2} .*\]\n)", text):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if not rule:
            continue
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        pairs = resources.group(1).split(", ") if resources else []
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs.append(
            {
                "rule": rule.group(1),
                "threads": int(threads.group(1)) if threads else 1,
                "resources": dict(kv.split("=", 1) for kv in pairs),
                "shell": shell.group(1) if shell else None,
            }
        )
    return jobs


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_has_the_authors_settings(name):
    base, per_device, schedule = RECIPES[name]
    config = validate(raw_config(recipe(name)))
    assert (config["model"]["base"], config["model"]["dtype"]) == (base, "bfloat16")
    assert config["prompts"]["source"] == "snorkel"
    sampling = {"k": 5, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 2048, "sample_seeds": None}
    assert {key: config["generate"][key] for key in sampling} == sampling  # seeds None: 0, 50, …, 200
    assert (config["judge"]["train"], config["judge"]["eval"]) == ("pairrm", "pairrm")
    assert config["judge"]["prompt_text"] == "chat_template"  # PairRM reads the templated prompt
    assert config["winprob"]["source"] == "scores"
    train = config["train"]
    expected = {
        "eta": 1000,
        "learning_rate": 5e-7,
        "optimizer": "rmsprop",
        "lr_scheduler": "linear",
        "warmup_ratio": 0.1,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "global_batch_size": 64,
        "per_device_batch_size": per_device,
        "num_processes": 8,
        "nodes": 1,
        "deepspeed": "config/deepspeed/zero3.json",
        "schedule_epochs": schedule,
        "stop_epochs": 1,
        "max_length": 1024,
        "max_prompt_length": 512,
        "truncation": "pair",
        "bf16": True,
        "gradient_checkpointing": True,
    }
    assert {key: train[key] for key in expected} == expected
    assert config["gpus"] is True


def test_mistral_baselines_overlay_adds_dpo_and_ipo_variants(workflow):
    overlay = recipe("mistral-7b-instruct-v0.2-baselines")
    config = validate(raw_config(recipe("mistral-7b-instruct-v0.2"), overlay))
    variants = config["variants"]
    assert sorted(variants) == ["dpo", "ipo", "sppo"]
    assert variants["sppo"] == config["train"]
    assert {k: variants["dpo"][k] for k in ("loss", "beta")} == {"loss": "dpo", "beta": 0.01}
    ipo = {k: variants["ipo"][k] for k in ("loss", "beta", "ipo_normalize")}
    assert ipo == {"loss": "ipo", "beta": 0.01, "ipo_normalize": False}
    args = ("--profile", "profiles/slurm", "--cores", "1024", "--configfile")
    files = (f"config/recipes/{recipe('mistral-7b-instruct-v0.2').name}", f"config/recipes/{overlay.name}")
    proc = snakemake(workflow, "iter3", *args, *files, "-n")
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    counts = {rule: sum(j["rule"] == rule for j in jobs) for rule in ITER3_JOBS}
    # iteration 1's 8 shards of samples and rankings once, then 8 per variant per later iteration
    shared = {"split": 1, "generate": 8 + 3 * 16, "rank": 8 + 3 * 16, "winprob": 1 + 3 * 2}
    assert counts == shared | {
        "reflogp": 72,
        "reflogp_merge": 9,
        "train": 9,
        "evaluate_answers": 1 + 9,
        "evaluate": 1 + 9,
    }


SINGLE_GPU_RECIPES = {
    # name: (base model, LoRA, learning rate, per-device batch) — 1 process, global batch 64
    "llama-3.2-1b-instruct-1gpu": ("meta-llama/Llama-3.2-1B-Instruct", False, 5e-7, 2),
    "gemma-2-9b-it-lora-1gpu": ("google/gemma-2-9b-it", True, 5e-6, 4),
}
# what a single-GPU recipe may set otherwise than the authors' (gemma-2-9b-it.yaml)
ONE_GPU_TRAIN_KEYS = {"learning_rate", "per_device_batch_size", "num_processes", "deepspeed", "lora"}


@pytest.mark.parametrize("name", SINGLE_GPU_RECIPES)
def test_single_gpu_recipe_is_the_authors_on_one_process(name):
    base, with_lora, learning_rate, per_device = SINGLE_GPU_RECIPES[name]
    config = validate(raw_config(recipe(name)))
    authors = validate(raw_config(recipe("gemma-2-9b-it")))
    for section in ("prompts", "split", "generate", "judge", "winprob", "evaluate"):
        assert config[section] == authors[section], section
    assert config["shards"] == authors["shards"] and config["gpus"] is True
    assert (config["model"]["base"], config["model"]["dtype"]) == (base, "bfloat16")
    train = config["train"]
    for key, value in authors["train"].items():
        assert key in ONE_GPU_TRAIN_KEYS or train[key] == value, key
    assert (train["num_processes"], train["nodes"], train["deepspeed"]) == (1, 1, None)
    assert (train["lora"]["enabled"], train["learning_rate"]) == (with_lora, learning_rate)
    assert (train["per_device_batch_size"], train["global_batch_size"]) == (per_device, 64)


@pytest.mark.parametrize("name", SINGLE_GPU_RECIPES)
def test_single_gpu_recipe_iter3_dag_runs_every_job_on_the_one_gpu(workflow, name):
    # as the recipe's header runs it: locally, one GPU job at a time
    args = ("--configfile", f"config/recipes/{name}.yaml", "--resources", "gpu=1", "-p")
    proc = snakemake(workflow, "iter3", *args, "-n")
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    assert {rule: sum(j["rule"] == rule for j in jobs) for rule in ITER3_JOBS} == ITER3_JOBS
    gpus = {j["rule"]: j["resources"].get("gpu") for j in jobs if j["rule"] in RESOURCES}
    assert set(gpus.values()) == {"1"}, gpus
    train = next(j for j in jobs if j["rule"] == "train")
    # through sppo.gpujob, which gives it a GPU of its own (CUDA_VISIBLE_DEVICES) and local caches
    launch = f"python -m sppo.gpujob 1 -- python {workflow}/scripts/train.py "
    assert train["shell"].startswith(launch), train["shell"]


def test_zero3_config_is_the_references():
    ds = yaml.safe_load((REPO / "config" / "deepspeed" / "zero3.json").read_text())
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "none"
    assert ds["zero_allow_untested_optimizer"] is True  # RMSprop
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        assert ds[key] == "auto"  # filled in by the Trainer from the train section


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_iter3_dag_and_slurm_resources(workflow, name):
    # --cores caps every job's threads (a cluster run gives none); a dry run's default is 1
    args = ("--profile", "profiles/slurm", "--configfile", f"config/recipes/{name}.yaml", "--cores", "1024")
    proc = snakemake(workflow, "iter3", *args, "-n")
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    counts = {rule: sum(j["rule"] == rule for j in jobs) for rule in ITER3_JOBS}
    assert counts == ITER3_JOBS
    assert not [j for j in jobs if j["rule"] == "basemodel"]
    for job in jobs:
        if job["rule"] not in RESOURCES:
            continue
        gpu, threads, mem_mb, runtime = RESOURCES[job["rule"]]
        res = job["resources"]
        assert res["tasks_per_gpu"] == "0", job  # one task, whatever the GPU count (gpu_resources)
        assert res["nodes"] == "1", job  # all of a job's GPUs on one node
        assert (int(res["gpu"]), job["threads"], int(res["mem_mb"]), int(res["runtime"])) == (
            gpu,
            threads,
            mem_mb,
            runtime,
        ), job
    train = next(j for j in jobs if j["rule"] == "train")
    assert (
        f"python -m torch.distributed.run --standalone --nproc_per_node=8 {workflow}/scripts/train.py "
        in train["shell"]
    ), train["shell"]


def test_local_run_asks_for_no_gpu(workflow):
    proc = snakemake(workflow, "iter1", "-n")
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    assert {j["resources"].get("gpu", "0") for j in jobs if j["resources"]} == {"0"}


def test_judges_declare_whether_they_use_a_gpu(workflow):
    """Every judge the schema offers says whether it computes on a GPU (sppo.judges.USES_GPU); with
    gpus: true, rank and evaluate with the synthetic judge ask for none, the model jobs for one."""
    from sppo.config import schema
    from sppo.judges import USES_GPU

    judge = schema()["properties"]["judge"]["properties"]
    assert set(judge["train"]["enum"]) == set(judge["eval"]["enum"]) == set(USES_GPU)
    assert USES_GPU == {
        "synthetic": False,
        "pairrm": True,
        "reward_model": True,
        "llm": False,
    }  # llm: a server's
    extra = workflow / "config" / "gpus.yaml"
    extra.write_text(yaml.safe_dump({"gpus": True}))
    proc = snakemake(workflow, "iter1", "--configfile", "config/config.yaml", str(extra), "-n")
    gpus = {j["rule"]: j["resources"].get("gpu") for j in dry_run_jobs(proc.stdout + proc.stderr)}
    assert gpus["rank"] == gpus["evaluate"] == "0" and gpus["generate"] == gpus["train"] == "1", gpus


def test_vllm_generation_asks_for_its_tensor_parallel_gpus(workflow):
    extra = workflow / "config" / "tp.yaml"
    extra.write_text(yaml.safe_dump({"generate": {"tensor_parallel_size": 2}}))
    proc = snakemake(workflow, "iter1", "--configfile", "config/recipes/gemma-2-9b-it.yaml", str(extra), "-n")
    gpus = {j["resources"]["gpu"] for j in dry_run_jobs(proc.stdout + proc.stderr) if j["rule"] == "generate"}
    assert gpus == {"2"}


def test_gpu_smoke_config_plans_iter1_on_one_gpu(workflow):
    """config/gpu-smoke.yaml (run by .ci/gpu-smoke on a GPU machine): vLLM, bf16, PairRM on cuda, one
    GPU per model job; here only planned, with the tiny PairRM checkpoint the script builds first."""
    from sppo.judges.tiny import build_tiny_pairrm

    config = validate(raw_config(REPO / "config" / "gpu-smoke.yaml"))
    assert config["generate"]["backend"] == "vllm" and config["judge"]["train"] == "pairrm"
    assert config["model"]["dtype"] == "bfloat16" and config["train"]["bf16"] is True
    build_tiny_pairrm(workflow / "pairrm")
    proc = snakemake(workflow, "iter1", "--configfile", "config/gpu-smoke.yaml", "--cores", "16", "-n")
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    assert {j["rule"] for j in jobs} >= {"basemodel", "generate", "rank", "train", "evaluate_answers"}
    gpus = {j["rule"]: j["resources"].get("gpu") for j in jobs if j["rule"] != "basemodel"}
    assert {gpus[rule] for rule in ("generate", "rank", "reflogp", "train", "evaluate_answers")} == {"1"}


class FakeJob(SimpleNamespace):
    """What the SLURM plugin reads of a job: resources (mapping and attributes) and threads."""

    def __init__(self, threads: int, **resources):
        class Resources(dict):
            __getattr__ = dict.__getitem__

        super().__init__(threads=threads, resources=Resources(resources))


def sbatch_flags(job) -> str:
    params = {"run_uuid": "x", "slurm_logfile": "x.log", "comment_str": "c", "account": "", "partition": ""}
    return get_submit_command(job, {**params, "workdir": None}) + set_gres_string(job)


def test_two_node_training_is_one_srun_torchrun_per_node(workflow):
    extra = workflow / "config" / "nodes.yaml"
    extra.write_text(yaml.safe_dump({"train": {"nodes": 2}}))
    proc = snakemake(
        workflow,
        "iter1",
        "--profile",
        "profiles/slurm",
        "--configfile",
        "config/recipes/gemma-2-9b-it.yaml",
        str(extra),
        "-n",
    )
    train = next(j for j in dry_run_jobs(proc.stdout + proc.stderr) if j["rule"] == "train")
    assert (
        "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 python -m torch.distributed.run --nnodes=2"
        ' --nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint="$(hostname)" --rdzv-id="$SLURM_JOB_ID"'
        f" {workflow}/scripts/train.py "
    ) in train["shell"], train["shell"]
    res = train["resources"]
    assert {k: res[k] for k in ("nodes", "tasks", "mpi", "gres", "tasks_per_gpu")} == {
        "nodes": "2",
        "tasks": "2",
        "mpi": "srun",
        "gres": "gpu:8",
        "tasks_per_gpu": "0",
    }
    # what the SLURM plugin makes of them: 2 nodes, one task (torchrun) per node, 8 GPUs per node
    flags = sbatch_flags(FakeJob(64, nodes=2, tasks=2, mpi="srun", gres="gpu:8", tasks_per_gpu=0))
    assert " --nodes=2" in flags and " --ntasks=2" in flags and " --gres=gpu:8" in flags
    assert "--ntasks-per-gpu" not in flags and "--gpus" not in flags
    assert " --cpus-per-task=64" in flags


def test_one_node_training_asks_for_all_its_gpus_on_one_node():
    flags = sbatch_flags(FakeJob(64, gpu=8, tasks_per_gpu=0, nodes=1))  # what gpu_resources gives
    assert " --gpus=8" in flags and " --cpus-per-task=64" in flags and " --nodes=1" in flags
    assert "--ntasks-per-gpu" not in flags
    # without nodes 1 sbatch may spread the 8 GPUs over several nodes
    assert "--nodes" not in sbatch_flags(FakeJob(64, gpu=8, tasks_per_gpu=0))
    # without tasks_per_gpu 0 the plugin would ask for one task (with all 64 CPUs) per GPU
    assert " --ntasks-per-gpu=1" in sbatch_flags(FakeJob(64, gpu=8))


def test_every_gpu_job_of_a_recipe_gets_sbatch_nodes_1(workflow):
    """The plugin's own sbatch command line for each GPU job of the flagship recipe's iteration 1, from
    the resources the dry run gives it."""
    args = ("--profile", "profiles/slurm", "--configfile", "config/recipes/gemma-2-9b-it.yaml")
    proc = snakemake(workflow, "iter1", *args, "--cores", "1024", "-n")
    jobs = [j for j in dry_run_jobs(proc.stdout + proc.stderr) if j["resources"].get("gpu", "0") != "0"]
    gpu_rules = {"generate", "rank", "reflogp", "train", "evaluate_answers", "evaluate"}
    assert {j["rule"] for j in jobs} == gpu_rules
    for j in jobs:
        res = {k: int(v) for k, v in j["resources"].items() if k in ("gpu", "tasks_per_gpu", "nodes")}
        flags = sbatch_flags(FakeJob(j["threads"], **res))
        assert f" --gpus={res['gpu']}" in flags and " --nodes=1" in flags, (j["rule"], flags)


def test_global_batch_must_fit_every_process_of_every_node():
    config = raw_config(recipe("gemma-2-9b-it"))
    config["train"]["nodes"] = 3
    with pytest.raises(ValueError, match=r"train.global_batch_size: 64 is not a multiple of .* = 96"):
        validate(config)


def test_slurm_profile_names_the_pinned_plugin_version():
    pin = re.search(r'"snakemake-executor-plugin-slurm==([\d.]+)"', (REPO / "pyproject.toml").read_text())
    header = (REPO / "profiles" / "slurm" / "config.yaml").read_text().splitlines()[0]
    assert f"snakemake-executor-plugin-slurm {pin.group(1)}," in header, header


def test_slurm_runtimes_stay_under_a_day_on_every_attempt():
    """Each rule's runtime (a Python expression of the attempt, as Snakemake evaluates it) for the
    first try and both retries (retries: 2) is at most 1440 minutes, under common MaxTime values."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["retries"] == 2
    for rule, res in profile["set-resources"].items():
        minutes = [eval(str(res["runtime"]), {"min": min}, {"attempt": a}) for a in (1, 2, 3)]
        assert minutes == sorted(minutes) and max(minutes) <= 1440, (rule, minutes)
    train = profile["set-resources"]["train"]["runtime"]
    assert [eval(train, {"min": min}, {"attempt": a}) for a in (1, 2, 3)] == [180, 360, 540]


@pytest.mark.parametrize(
    ("name", "generator"),
    [
        ("gemma-2-9b-it", "SPPO-Gemma-2-9B-It-PairRM"),
        ("gemma-2-9b-it-lora-1gpu", "SPPO-Gemma-2-9B-It-PairRM"),
        ("llama-3-8b-instruct", "SPPO-Llama-3-Instruct-8B-PairRM"),
        ("mistral-7b-instruct-v0.2", "SPPO-Mistral7B-PairRM"),
    ],
)
def test_alpaca_eval_answers_as_the_authors_entry_was_generated(name, generator, monkeypatch):
    """Each recipe names the alpaca_eval model config of the authors' leaderboard entry for its base
    model, and that config is one the answers reproduce (checked as when AlpacaEval is turned on)."""
    monkeypatch.chdir(REPO)
    config = yaml.safe_load(recipe(name).read_text())
    assert config["alpaca_eval"] == {"generator": generator}
    family = {"Gemma-2": "gemma-2", "Llama-3": "llama-3", "Mistral7B": "mistral-7b"}
    assert (
        family[re.search(r"Gemma-2|Llama-3|Mistral7B", generator).group()] in config["model"]["base"].lower()
    )
    turned_on = {
        "enabled": True,
        "instructions": "data/prompts.jsonl",
        "annotator": "weighted_alpaca_eval_gpt4_turbo",
    }
    merge_config(config, {"alpaca_eval": turned_on})
    assert validate(config)["alpaca_eval"]["generator"] == generator
