import glob
import os
import shlex

from sppo import fetch, gpujob, hub, runconfig
from sppo.config import variant_trains
from sppo.io import dumps
from sppo.judges import USES_GPU
from sppo.job import put_interpreter_on_path
from sppo.provenance.code import WORKFLOW_DIR_ENV


wildcard_constraints:
    t=r"\d+",
    s=r"\d+",
    v=r"(?:[a-z][a-z0-9_-]*/)?",  # a variant's results prefix "NAME/", or "" (one run)


# Shell rules call `python`: make it the interpreter running Snakemake (see sppo.job).
put_interpreter_on_path(workflow.deployment_settings.deployment_method)
# The workflow's own directory (this checkout): also when the working directory is another one
# (snakemake -s DIR/Snakefile --directory WORK), and when another Snakefile imports this one as a
# module, where workflow.basedir is that Snakefile's directory. Jobs find the workflow's files
# (hashed into their provenance records) there.
WORKFLOW_DIR = os.path.dirname(str(workflow.current_basedir))  # rules/ → its parent
SNAKEFILE = os.path.join(WORKFLOW_DIR, "Snakefile")
os.environ[WORKFLOW_DIR_ENV] = WORKFLOW_DIR
# Jobs' node-local caches and, for a local run, the GPUs its jobs share (sppo.gpujob). A SLURM job's
# Snakemake (--mode remote) exports no pool: the job keeps the GPUs SLURM gave it.
gpujob.export_settings(config, not workflow.remote_exec, ".snakemake/gpu-slots")
# What the run reads from the hub (target fetch). Once it is fetched, the jobs read only the hub cache.
FETCH_PLAN = fetch.plan(config)
fetch.export_offline(FETCH_PLAN, config["hub_offline"])
# Jobs read the commits the fetch recorded (sppo.hub.pinned), once there is a record.
FETCH_RECORD = "results/fetch/revisions.json"
os.environ[hub.REVISIONS_ENV] = os.path.abspath(FETCH_RECORD)
# The run's configuration: the config files it was given, or the toy (sppo.runconfig).
RUN_CONFIG_NAMES = runconfig.names(workflow.overwrite_configfiles)
ITERATIONS = config["iterations"]
SHARDS = config["shards"]
MODEL_ENV = "../envs/model.yaml"
DATA_ENV = "../envs/data.yaml"
# Results prefix (wildcard v) → that run's train section: {"": train} for one run, else
# {"NAME/": …} per variant (config key variants); results/{v}iter{t}/… is variant v's iteration t.
VARIANTS = variant_trains(config)


def policy(t, v=""):
    """Where variant v's π_t is: a results directory, or (t = 0, shared) the configured hub id or
    local directory."""
    t = int(t)
    if t > 0:
        return f"results/{v}iter{t}/model"
    return (
        "results/iter0/model"
        if config["model"]["base"] == "tiny"
        else config["model"]["base"]
    )


def policy_files(t, v=""):
    """π_t as a workflow input: its directory when it is a file here, nothing for a hub id."""
    path = policy(t, v)
    return [path] if path.startswith("results/") or os.path.isdir(path) else []


def policy_name(t, v=""):
    """A readable name of π_t, e.g. gemma-2-9b-it-SPPO-Iter2, or gemma-2-9b-it-dpo-Iter2 for variant
    dpo (the generator name in AlpacaEval files)."""
    base = os.path.basename(os.path.normpath(config["model"]["base"]))
    if int(t) == 0:
        return base
    return f"{base}-{v[:-1] or 'SPPO'}-Iter{t}"  # v: "NAME/" or ""


def samples(wildcards):
    """The directory of the samples, rankings and pairs that variant v trains on in iteration t: those
    of π_0 (iteration 1) are shared by every variant."""
    return samples_dir(wildcards.t, wildcards.v)


def samples_dir(t, v=""):
    return "results/iter1" if int(t) == 1 else f"results/{v}iter{t}"


def trained():
    """(results prefix v, t) of every trained π_t: each variant's π_1 … π_T."""
    return [(v, t) for v in VARIANTS for t in range(1, ITERATIONS + 1)]


def per_policy(pattern, policies):
    """``pattern`` (with {v}, {t}, {samples}: samples_dir) for each (v, t) of ``policies``."""
    return [pattern.format(v=v, t=t, samples=samples_dir(t, v)) for v, t in policies]


def labels(policies):
    """[variant name ("" for one run or π_0), t] of each (v, t): how the report scripts name series."""
    return [[v[:-1], t] for v, t in policies]


def train_settings(wildcards):
    """Variant v's train section."""
    return VARIANTS[wildcards.v]


def parent_policy(wildcards):
    return policy(int(wildcards.t) - 1, wildcards.v)


def parent_policy_files(wildcards):
    return policy_files(int(wildcards.t) - 1, wildcards.v)


def reference_policy(wildcards):
    """π_ref of variant v in iteration t: π_{t−1}, or π_0 with train.reference base."""
    if train_settings(wildcards)["reference"] == "base":
        return policy(0)
    return parent_policy(wildcards)


def reference_policy_files(wildcards):
    path = reference_policy(wildcards)
    return [path] if path.startswith("results/") or os.path.isdir(path) else []


def evaluated_policy(wildcards):
    return policy(wildcards.t, wildcards.v)


def evaluated_policy_files(wildcards):
    return policy_files(wildcards.t, wildcards.v)


def judge_settings(role):
    """The judge section restricted to the judge of ``role``, so that changing the other one reruns nothing here."""
    name = config["judge"][role]
    return {role: name, name: config["judge"].get(name, {})}


def judge_prompt(wildcards):
    """The prompt text the rank stage's judge reads (judge.prompt_text); for chat_template also
    the tokenizer of π_{t−1} (whose responses are judged) and how to load it."""
    text = config["judge"]["prompt_text"]
    if text == "raw":
        return {"text": text}
    model = {key: config["model"][key] for key in ("revision", "trust_remote_code")}
    return {"text": text, "tokenizer": parent_policy(wildcards), **model}


def judge_prompt_files(wildcards):
    """π_{t−1} as an input of rank when its chat template renders the judge's prompts."""
    if config["judge"]["prompt_text"] == "raw":
        return []
    return parent_policy_files(wildcards)


def reflogp_settings(wildcards):
    """The train keys the reflogp stage reads: changing any other train key does not rerun it."""
    keys = (
        "max_length",
        "max_prompt_length",
        "truncation",
        "responses",
        "per_device_batch_size",
        "logprob_chunk",
        "packing",
    )
    return {key: train_settings(wildcards)[key] for key in keys}


def answer_settings():
    """The evaluate keys that shape π_t's answers (not the bootstrap, which only the metrics use),
    and the generate keys of the run's generation backend, which writes the answers too.
    """
    backend = (
        "backend",
        "tensor_parallel_size",
        "gpu_memory_utilization",
        "batch_invariant",
        "long_prompts",
    )
    keys = ("max_new_tokens", "temperature", "top_p", "batch_size")
    return {key: config["generate"][key] for key in backend} | {
        key: config["evaluate"][key] for key in keys
    }


def alpaca_answer_settings():
    """answer_settings(), with the prompt template and sampling settings of alpaca_eval.generator where
    it names one of alpaca_eval's model configs (sppo.alpaca_eval.generator_settings).
    """
    name = config["alpaca_eval"]["generator"]
    if name is None or not config["alpaca_eval"]["enabled"]:
        return answer_settings()
    from sppo import alpaca_eval

    return answer_settings() | alpaca_eval.generator_settings(name)


def evaluations(n, pattern):
    """``pattern`` (with {v} and {t}) for π_0 and each variant's π_1 … π_n."""
    return [pattern.format(v="", t=0)] + [
        pattern.format(v=v, t=t) for v in VARIANTS for t in range(1, n + 1)
    ]


def iteration_outputs(n):
    """Everything iteration n's target asks for: the evaluation of π_0 and every variant's π_1 … π_n."""
    return (
        evaluations(n, "results/{v}iter{t}/evaluate/metrics.json")
        + evaluations(n, "results/{v}iter{t}/evaluate/alpaca_eval.json")
        + judge_evaluations(n, "metrics.json")
        + alpaca_results(n)
        + leaderboard_results(n)
    )


def alpaca_results(n):
    """AlpacaEval's metrics of π_0 … π_n when alpaca_eval.enabled, else nothing."""
    if not config["alpaca_eval"]["enabled"]:
        return []
    return evaluations(n, "results/{v}iter{t}/evaluate/alpaca/metrics.json")


def local_alpaca_instructions():
    """alpaca_eval.instructions where it is a local file (a hub file is read from the fetched cache)."""
    source = config["alpaca_eval"]["instructions"]
    return [] if hub.is_file_url(source) else [source]


def compared_judges():
    """The judges the report sets side by side (evaluate.extra_judges): judge.eval, judge.train and
    the extra ones, each once; none when no extra judge is named."""
    extra = config["evaluate"]["extra_judges"]
    if not extra:
        return []
    return list(
        dict.fromkeys([config["judge"]["eval"], config["judge"]["train"], *extra])
    )


def judged_dir(judge, v, t):
    """Where ``judge``'s annotations and metrics of π_t lie: judge.eval's are those of the evaluate job."""
    if judge == config["judge"]["eval"]:
        return f"results/{v}iter{t}/evaluate"
    return f"results/{v}iter{t}/evaluate/judges/{judge}"


def judge_evaluations(n, name):
    """File ``name`` of every evaluate_judge job of each variant's π_1 … π_n: one per compared
    judge other than judge.eval."""
    return [
        f"{judged_dir(judge, v, t)}/{name}"
        for v in VARIANTS
        for t in range(1, n + 1)
        for judge in compared_judges()
        if judge != config["judge"]["eval"]
    ]


def named_judge_settings(wildcards):
    """The judge section of judge ``wildcards.judge`` alone, in the role "eval" (for load_judge)."""
    name = wildcards.judge
    return {"eval": name, name: config["judge"].get(name, {})}


def named_judge_gpus(wildcards):
    """GPUs of an evaluate_judge job: one where config gpus and the judge computes on a GPU."""
    return 1 if config["gpus"] and USES_GPU[wildcards.judge] else 0


def target_files(n):
    """What target iter{n} asks for; the last one (the default target) also the summary. Rule audit
    checks the same files."""
    summary = report_outputs() + list(rules.run_card.output) if n == ITERATIONS else []
    return iteration_outputs(n) + summary


def limits(v):
    """Variant v's train length limits, by which the report counts the responses cut."""
    return {
        key: VARIANTS[v][key]
        for key in ("max_length", "max_prompt_length", "truncation")
    }


def benchmark_files():
    """The benchmark file of every job the default target runs (rule report_resources)."""
    sampled = list(dict.fromkeys([("", 1)] + [(v, t) for v, t in trained() if t > 1]))
    files = ["logs/benchmarks/split/split.tsv"]
    if config["model"]["base"] == "tiny":
        files.append("logs/benchmarks/basemodel/basemodel.tsv")
    for stage in ("generate", "rank"):
        files += [
            path
            for s in range(SHARDS)
            for path in per_policy(
                f"logs/benchmarks/{stage}/{{v}}iter{{t}}/shard{s}.tsv", sampled
            )
        ]
    files += per_policy("logs/benchmarks/winprob/{v}iter{t}.tsv", sampled)
    files += [
        path
        for s in range(SHARDS)
        for path in per_policy(
            f"logs/benchmarks/reflogp/{{v}}iter{{t}}/shard{s}.tsv", trained()
        )
    ]
    files += per_policy("logs/benchmarks/train/{v}iter{t}.tsv", trained())
    files += evaluations(ITERATIONS, "logs/benchmarks/evaluate_answers/{v}iter{t}.tsv")
    files += evaluations(ITERATIONS, "logs/benchmarks/evaluate/{v}iter{t}_metrics.tsv")
    files += [
        f"logs/benchmarks/evaluate_judge/{v}iter{t}_{judge}.tsv"
        for v in VARIANTS
        for t in range(1, ITERATIONS + 1)
        for judge in compared_judges()
        if judge != config["judge"]["eval"]
    ]
    if config["leaderboard"]["enabled"]:
        files += evaluations(ITERATIONS, "logs/benchmarks/leaderboard/{v}iter{t}.tsv")
    return files


def report_outputs():
    """The summary and the report's figures and tables, all but the run card (which audits them)."""
    made = [
        rules.summary,
        rules.report_training,
        rules.report_distributions,
        rules.report_lengths,
    ]
    made += [rules.report_resources, rules.report_samples]
    if compared_judges():
        made.append(rules.report_judges)
    return [path for rule in made for path in rule.output]


def leaderboard_results(n):
    """The benchmarks of π_0 … π_n when leaderboard.enabled, else nothing."""
    if not config["leaderboard"]["enabled"]:
        return []
    return evaluations(n, "results/{v}iter{t}/leaderboard/results.json")


def leaderboard_settings():
    """The leaderboard section less `enabled`, so that switching it on reruns nothing already done."""
    return {k: v for k, v in config["leaderboard"].items() if k != "enabled"}


def leaderboard_task_files():
    """The custom task YAMLs under leaderboard.include_path: editing one reruns the benchmarks."""
    path = config["leaderboard"]["include_path"]
    if path is None:
        return []
    return sorted(glob.glob(os.path.join(path, "**", "*.yaml"), recursive=True))


def gpus(step):
    """GPUs one job of the given step asks for (resource gpu, per node); none unless config gpus."""
    if not config["gpus"]:
        return 0
    if step == "train":
        return config["train"]["num_processes"]
    if step == "generate" and config["generate"]["backend"] == "vllm":
        return config["generate"]["tensor_parallel_size"]
    if step in ("rank", "evaluate"):
        judge = config["judge"]["train" if step == "rank" else "eval"]
        return 1 if USES_GPU[judge] else 0
    return 1


def gpu_resources(step):
    """The resources gpu (see gpus), tasks_per_gpu 0 and, for a GPU job, nodes 1.

    The SLURM plugin (2.6) otherwise adds --ntasks-per-gpu=1 to every GPU job: as many tasks, each
    with all the job's CPUs, as GPUs. And sbatch --gpus=N without --nodes may spread the N GPUs over
    several nodes, where the plugin's one-node job step cannot start: nodes 1 gives --nodes=1.
    """
    n = gpus(step)
    return {"gpu": n, "tasks_per_gpu": 0, **({"nodes": 1} if n else {})}


def train_resources():
    """Resources of a train job: its GPUs; on several nodes also nodes, tasks and "mpi".

    An "mpi" job is not wrapped in `srun -n1` by the SLURM plugin: the launcher's own srun starts
    one torchrun per node. GPUs are then asked per node (gres): sbatch --gpus counts the whole job.
    """
    nodes, per_node = config["train"]["nodes"], gpus("train")
    if nodes == 1:
        return gpu_resources("train")
    extra = {"gres": f"gpu:{per_node}", "tasks_per_gpu": 0} if per_node else {}
    return {"nodes": nodes, "tasks": nodes, "mpi": "srun", **extra}


def gpu_job_prefix(step):
    """For a shell rule: the wrapper that gives the job its caches and GPUs (sppo.gpujob), or ""
    without GPUs."""
    n = gpus(step)
    return f"python -m sppo.gpujob {n} -- " if n else ""


def train_launcher():
    """Python for one process; torchrun with one process per GPU or CPU slot otherwise.

    On several nodes srun starts one torchrun per node; they meet (c10d) at the node this command
    runs on, the job's first (the SLURM plugin's job step hides SLURM_JOB_NODELIST, so: hostname).
    """
    n, nodes = config["train"]["num_processes"], config["train"]["nodes"]
    if nodes > 1:
        return (
            f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1"
            f" python -m torch.distributed.run --nnodes={nodes} --nproc-per-node={n}"
            ' --rdzv-backend=c10d --rdzv-endpoint="$(hostname)" --rdzv-id="$SLURM_JOB_ID"'
        )
    if n == 1:
        return "python"
    return f"python -m torch.distributed.run --standalone --nproc_per_node={n}"


def quoted_json(obj):
    return shlex.quote(dumps(obj))
