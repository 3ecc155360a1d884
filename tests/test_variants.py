"""config/compare.yaml: SPPO, SPPO on all K responses, iterative DPO and iterative IPO side by side in one
run, sharing what they have in common."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import early_result, finished_copy, snakemake, write_config

VARIANTS = ["dpo", "ipo", "sppo", "sppo-all"]


def run_compare(directory: Path) -> tuple[Path, str]:
    """config/compare.yaml over the toy, run in a copy of the finished default run (started with the
    session, in the heavy lane: conftest). The variants share with it the split, π_0 and its
    evaluation, and iteration 1's samples, rankings and pairs: those are there and current, so only
    the variants' own jobs run. The copy's results/ is handed to the comparison (results/config.yaml
    removed, as for a run under a new name)."""
    workdir = finished_copy(directory / "wf")
    (workdir / "results" / "config.yaml").unlink()
    proc = snakemake(
        workdir, "iter3", "--configfile", "config/config.yaml", "config/compare.yaml", timeout=3600, cores=1
    )
    return workdir, proc.stderr


pytestmark = pytest.mark.early.with_args(run_compare, lane="heavy")


@pytest.fixture(scope="module")
def compare_run(finished_run):
    return early_result(run_compare, "heavy")


def metrics(path):
    return json.loads(path.read_text())


def test_the_shared_work_is_the_single_runs(compare_run):
    """What the variants share is the single run's, reused: not one job of it ran again (a variant
    with a path of its own for it would have run it), while every variant's own jobs ran."""
    workdir, log = compare_run
    jobs = re.findall(r"rule (\w+):\n(?:    .*\n)*?    wildcards: ([^\n]*)", log)
    assert not [w for rule, w in jobs if rule in ("generate", "rank", "winprob") and "t=1," in w]
    assert not re.findall(r"^(?:local)?rule (?:basemodel|split):", log, re.M)  # jobs without wildcards
    assert not [w for rule, w in jobs if rule in ("evaluate_answers", "evaluate") and "t=0" in w]
    trained = sorted(w for rule, w in jobs if rule == "train")
    assert trained == sorted(f"v={name}/, t={t}" for name in VARIANTS for t in (1, 2, 3))
    for name in VARIANTS:
        assert not (workdir / f"results/{name}/iter1/generate").exists()
        shards = {f"results/{name}/iter1/reflogp/shard{s}.jsonl" for s in range(2)}
        for shard in shards:  # each variant's reference log-probs come from π_0 and the shared pairs
            record = metrics(workdir / "results/provenance" / f"{shard.removeprefix('results/')}.json")
            assert set(record["inputs"]) == {"results/iter0/model", "results/iter1/winprob/pairs.jsonl"}
        record = metrics(workdir / f"results/provenance/{name}/iter1/reflogp/pairs.jsonl.json")
        assert set(record["inputs"]) == shards | {"results/iter1/winprob/pairs.jsonl"}
        assert (workdir / f"results/{name}/iter2/generate/shard1.jsonl").is_file()


def test_every_variant_beats_the_base_policy(compare_run):
    workdir, _ = compare_run
    for name in VARIANTS:
        m = metrics(workdir / f"results/{name}/iter3/evaluate/metrics.json")
        assert m["model"] == f"tiny-{name}-Iter3" and m["baseline"] == "tiny"
        assert m["win_rate_ci95"][0] > 0.5, (name, m)


def test_each_variant_trained_its_own_objective(compare_run):
    workdir, _ = compare_run
    for name, loss, k in [("dpo", "dpo", 2), ("ipo", "ipo", 2), ("sppo", "sppo", 2), ("sppo-all", "sppo", 5)]:
        trained = metrics(workdir / f"results/{name}/iter2/model/sppo_train.json")
        assert trained["settings"]["loss"] == loss and trained["parent"] == f"results/{name}/iter1/model"
        rows = (workdir / f"results/{name}/iter2/reflogp/pairs.jsonl").read_text().splitlines()
        assert all(len(json.loads(row)["ref_logps"]) == k for row in rows)


def test_the_sppo_variant_is_the_single_run(compare_run, finished_run):
    """Variant sppo has the train section as it is: the same numbers as the default (single) run."""
    workdir, _ = compare_run
    for t in (1, 2, 3):
        ours = metrics(workdir / f"results/sppo/iter{t}/evaluate/metrics.json")
        single = metrics(finished_run / f"results/iter{t}/evaluate/metrics.json")
        for key in ("win_rate", "win_rate_ci95", "lc_win_rate", "mean_length"):
            assert ours[key] == single[key], (t, key)


def test_summary_compares_the_variants(compare_run):
    workdir, _ = compare_run
    lines = (workdir / "results/summary/metrics.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["variant", "iteration", "model"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [(r[0], r[1]) for r in rows] == [(v, str(t)) for v in VARIANTS for t in range(4)]
    assert all(r[3] for r in rows if r[1] == "0") and {r[2] for r in rows if r[1] == "0"} == {"tiny"}
    assert (workdir / "results/summary/winrate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_audit_passes(compare_run):
    workdir, _ = compare_run
    proc = snakemake(
        workdir, "audit", "--configfile", "config/config.yaml", "config/compare.yaml", check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_report_shows_every_variant(compare_run):
    """The report's tables carry each variant (its figures: one colour each), iteration 1's shared
    samples once per variant, and π_0 once beside every variant's π_1 … π_3."""
    workdir, _ = compare_run
    summary = workdir / "results/summary"

    def table(name):
        return pd.read_csv(summary / name, sep="\t", keep_default_na=False)

    assert sorted(set(table("training.tsv")["variant"])) == VARIANTS
    lengths = table("lengths.tsv")
    first = lengths[(lengths["responses"] == "samples") & (lengths["iteration"] == 1)]
    assert first["variant"].tolist() == VARIANTS
    assert lengths[lengths["responses"] == "answers"][["variant", "iteration"]].values.tolist()[0] == ["", 0]
    policies = set(table("samples.tsv")["policy"])
    assert policies == {"π_0"} | {f"π_{t} ({v})" for v in VARIANTS for t in (1, 2, 3)}
    card = json.loads((summary / "run_card.json").read_text())
    assert card["audit"]["passed"] and sorted(card["config"]["variants"]) == VARIANTS
    for name in ("training.png", "distributions.png", "lengths.png", "resources.png", "length_winrate.png"):
        assert (summary / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.parametrize(
    ("reference", "expected"), [("previous", "results/iter2/model"), ("base", "results/iter0/model")]
)
def test_reference_policy_of_the_log_ratios(workflow, reference, expected):
    """train.reference: π_{t−1} (SPPO) or π_0 in every iteration; π_t still starts from π_{t−1}."""
    write_config(workflow, {"train": {"reference": reference}})
    proc = snakemake(workflow, "results/iter3/model", "-n")
    blocks = re.findall(r"rule (\w+):\n    input: ([^\n]*)\n    output: ([^\n]*)", proc.stdout + proc.stderr)
    reflogp = [inputs for rule, inputs, output in blocks if rule == "reflogp" and "iter3" in output]
    assert reflogp == [f"results/iter3/winprob/pairs.jsonl, {expected}"] * 2  # two shards
    train = [inputs for rule, inputs, output in blocks if rule == "train" and "iter3" in output]
    assert train == ["results/iter3/reflogp/pairs.jsonl, results/iter2/model"]
