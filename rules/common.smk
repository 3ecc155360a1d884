import os
import shlex

from sppo.io import dumps


wildcard_constraints:
    t=r"\d+",
    s=r"\d+",


ITERATIONS = config["iterations"]
SHARDS = config["shards"]
MODEL_ENV = "../envs/model.yaml"
DATA_ENV = "../envs/data.yaml"


def policy(t):
    """Where π_t is: a results directory, or (t = 0) the configured hub id or local directory."""
    t = int(t)
    if t > 0 or config["model"]["base"] == "tiny":
        return f"results/iter{t}/model"
    return config["model"]["base"]


def policy_files(t):
    """π_t as a workflow input: its directory when it is a file here, nothing for a hub id."""
    path = policy(t)
    return [path] if path.startswith("results/") or os.path.isdir(path) else []


def policy_name(t):
    """A readable name of π_t, e.g. gemma-2-9b-it-SPPO-Iter2 (the generator name in AlpacaEval files)."""
    base = os.path.basename(os.path.normpath(config["model"]["base"]))
    return base if int(t) == 0 else f"{base}-SPPO-Iter{t}"


def parent_policy(wildcards):
    return policy(int(wildcards.t) - 1)


def parent_policy_files(wildcards):
    return policy_files(int(wildcards.t) - 1)


def evaluated_policy(wildcards):
    return policy(wildcards.t)


def evaluated_policy_files(wildcards):
    return policy_files(wildcards.t)


def judge_settings(role):
    """The judge section restricted to the judge of ``role``, so that changing the other one reruns nothing here."""
    name = config["judge"][role]
    return {role: name, name: config["judge"].get(name, {})}


def iteration_outputs(n):
    """Everything iteration n's target asks for: the evaluation of π_0 … π_n."""
    return expand(
        [
            "results/iter{t}/evaluate/metrics.json",
            "results/iter{t}/evaluate/alpaca_eval.json",
        ],
        t=range(n + 1),
    )


def train_launcher():
    """python for one process; torchrun with one process per GPU or CPU slot otherwise."""
    n = config["train"]["num_processes"]
    if n == 1:
        return "python"
    return f"python -m torch.distributed.run --standalone --nproc_per_node={n}"


def quoted_json(obj):
    return shlex.quote(dumps(obj))
