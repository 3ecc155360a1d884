"""The run's report (rules/report.smk): its modules on small inputs, its files under results/summary/
on the default run, the progress lines of the long jobs, and `snakemake --report` opened in a real
headless Chromium (Debian's chromium and chromium-driver; .ci/run installs them)."""

from __future__ import annotations

import json
import re
import shutil
import socket

import pandas as pd
import pytest
from conftest import CPU_MODEL_CONFIG, missing_service, scheduled_jobs, snakemake, write_config

from sppo import io, models
from sppo.report import lengths, resources, runcard, samples, training

PNG = b"\x89PNG\r\n\x1a\n"
CATEGORIES = ["Summary", "Training", "Distributions", "Lengths", "Resources", "Samples", "Run card"]
FIGURES = {  # category → the PNG figures it shows
    "Summary": ["winrate.png", "length_winrate.png"],
    "Training": ["training.png"],
    "Distributions": ["distributions.png"],
    "Lengths": ["lengths.png"],
    "Resources": ["resources.png"],
}


def test_training_curves_come_from_the_trainers_logged_dicts():
    text = "\n".join(
        [
            "2026-11-26 02:53:40 [rank 0] sppo.train INFO 87 pairs, 1 processes: 12 optimizer steps",
            "{'loss': '680.8', 'grad_norm': '1707', 'learning_rate': '0', 'r_w': '0', 'target_w': '23.96',"
            " 'r_l': '0', 'target_l': '-26.63', 'step': 1, 'epoch': '0.1667'}",
            "{'loss': '595.6', 'grad_norm': '1386', 'learning_rate': '0.0005', 'r_w': '-0.5',"
            " 'target_w': '21.31', 'r_l': '-1.5', 'target_l': '-25.21', 'step': 2, 'epoch': '0.3333'}",
            "{'train_runtime': '3.465', 'train_loss': '644.2', 'epoch': '2'}",
        ]
    )
    rows = training.parse_log(text)
    assert len(rows) == 2
    assert rows[1] == {
        "step": 2.0,
        "loss": 595.6,
        "r_w": -0.5,
        "target_w": 21.31,
        "r_l": -1.5,
        "target_l": -25.21,
        "grad_norm": 1386.0,
        "learning_rate": 0.0005,
    }


def test_samples_choice_depends_on_the_seed_not_on_the_order():
    ids = [f"p{i}" for i in range(50)]
    chosen = samples.choose(ids, 4, seed=0)
    assert len(chosen) == 4 and chosen == [i for i in ids if i in chosen]  # in the file's order
    assert sorted(samples.choose(ids[::-1], 4, seed=0)) == sorted(chosen)
    assert samples.choose(ids, 4, seed=1) != chosen
    assert samples.choose(ids[:3], 4, seed=0) == ids[:3]


def test_resources_sum_time_and_keep_peak_memory_per_stage_and_iteration(tmp_path):
    def bench(path, seconds, rss):
        file = tmp_path / "logs/benchmarks" / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t{rss}\n")
        return str(file)

    paths = [
        bench("split/split.tsv", 1.0, 20),
        bench("generate/iter1/shard0.tsv", 2.0, 300),
        bench("generate/iter1/shard1.tsv", 3.0, 310),
        bench("train/dpo/iter2.tsv", 5.0, 600),
        bench("evaluate/dpo/iter2_metrics.tsv", 4.0, "-"),  # no memory measured
    ]
    df = resources.table(paths).set_index(["stage", "variant", "iteration"])
    assert df.loc[("split", "", 0)].to_dict() == {"jobs": 1, "seconds": 1.0, "max_rss_mb": 20.0}
    assert df.loc[("generate", "", 1)].to_dict() == {"jobs": 2, "seconds": 5.0, "max_rss_mb": 310.0}
    assert df.loc[("train", "dpo", 2), "seconds"] == 5.0
    assert pd.isna(df.loc[("evaluate", "dpo", 2), "max_rss_mb"])


def test_run_card_groups_the_recorded_machines_and_shows_a_failed_audit():
    def rec(rule, host):
        return {
            "rule": rule,
            "code": {"git_commit": "abc", "git_dirty": False},
            "software": {"torch": "2.13.0"},
            "host": {"hostname": host, "gpus": [], "slurm_job_id": None},
        }

    records = {"a": rec("generate", "n1"), "b": rec("train", "n2"), "c": rec("rank", "n1")}
    card = runcard.build({"seed": 1}, records, (1, "results/x: stale\n"), "2026-12-06T04:10:00+00:00")
    assert card["audit"] == {
        "passed": False,
        "exit_status": 1,
        "report": "results/x: stale\n",
        "at": "2026-12-06T04:10:00+00:00",
    }
    assert card["jobs"] == 3 and card["config"] == {"seed": 1}
    assert [(m["value"]["hostname"], m["jobs"], m["rules"]) for m in card["machines"]] == [
        ("n1", 2, ["generate", "rank"]),
        ("n2", 1, ["train"]),
    ]
    assert card["code"] == [
        {
            "value": {"git_commit": "abc", "git_dirty": False},
            "jobs": 3,
            "rules": ["generate", "train", "rank"],
        }
    ]
    page = runcard.to_html(card)
    assert "FAILED (exit status 1)" in page and "results/x: stale" in page
    passed = runcard.to_html(runcard.build({}, records, (0, "ok\n"), "2026-12-06T04:10:00+00:00"))
    # "passed" only with the time it was reached and the warning that later edits are not covered
    assert (
        "<b>passed</b> over 3 recorded jobs, at 2026-12-06T04:10:00+00:00 (UTC) when this card was built"
        in passed
    )
    assert "does not cover an artifact changed after that" in passed


def test_audit_summary_for_the_report_caption():
    """The report's caption (rendered when the report is built) says passed only for exit status 0,
    always with the time, the audit's count line and its first lines that are not ok."""
    report = "ok         results/a\nMODIFIED   results/b: sha256 differs\nSTALE      results/c: made from b\n"
    report += "audit: 3 artifacts: 1 ok, 1 modified, 1 stale (0.1 s)\n"
    failed = runcard.audit_summary(1, report, "2026-12-06T04:10:00+00:00", problems_shown=1)
    assert failed.startswith("**FAILED** (exit status 1) at 2026-12-06T04:10:00+00:00 (UTC)")
    assert "``audit: 3 artifacts: 1 ok, 1 modified, 1 stale (0.1 s)``" in failed
    assert "    MODIFIED   results/b" in failed and "STALE" not in failed and "results/a" not in failed
    passed = runcard.audit_summary(0, "ok         results/a\naudit: 1 artifacts: 1 ok (0.1 s)\n", "T")
    assert passed == "**passed** at T (UTC): ``audit: 1 artifacts: 1 ok (0.1 s)``"
    assert repr(runcard.AuditWhenShown("Snakefile", {"seed": 1})) == "AuditWhenShown()"  # params stay stable


def test_lengths_count_samples_cut_by_generation_and_prompts_fitted(tiny_model_dir, tmp_path):
    tokenizer = models.load_tokenizer(str(tiny_model_dir), CPU_MODEL_CONFIG)
    rows = [
        {"prompt": "Hi", "responses": ["a b", "c"], "finish_reasons": ["length", "stop"]},
        {"prompt": "Yo", "responses": ["d", "e f g"], "finish_reasons": ["stop", "stop"]},
    ]
    io.write_jsonl(tmp_path / "shard0.jsonl", rows)
    io.write_json(tmp_path / "shard0.judge.json", {"truncated": {}})
    for s, (cut, dropped) in enumerate([(1, 2), (0, 1)]):
        io.write_json(tmp_path / f"shard{s}.stats.json", {"cut": cut, "dropped": dropped})
    train = {"max_length": 256, "max_prompt_length": 192, "truncation": "pair"}
    measured = lengths.samples(
        [tmp_path / "shard0.jsonl"],
        [tmp_path / "shard0.judge.json"],
        [tmp_path / "shard0.stats.json", tmp_path / "shard1.stats.json"],
        tokenizer,
        train,
    )
    # one of four responses reached max_new_tokens; prompts: 1 cut, 2 + 1 dropped over the shards
    assert measured["cut_by_generation"] == 0.25 and measured["n"] == 4
    assert (measured["prompts_cut"], measured["prompts_dropped"]) == (1, 3)


def test_report_files_of_the_default_run(finished_run):
    summary = finished_run / "results/summary"
    for name in [f for figures in FIGURES.values() for f in figures]:
        assert (summary / name).read_bytes()[:8] == PNG, name

    # Training: 12 logged steps per iteration (87 pairs, batch 16, 2 epochs); at the first step
    # π_θ = π_ref, so r is 0, while the targets η(P̂ − ½) of chosen and rejected lie either side of it.
    curves = pd.read_csv(summary / "training.tsv", sep="\t")
    assert curves.groupby("iteration")["step"].max().to_dict() == {1: 12, 2: 12, 3: 12}
    first = curves[curves["step"] == 1]
    assert (first[["r_w", "r_l"]].abs() < 1e-3).all().all(), first
    assert (first["target_w"] > 0).all() and (first["target_l"] < 0).all()
    assert curves[["loss", "grad_norm"]].notna().all().all()
    assert 0 < curves["learning_rate"].max() <= 1e-3

    spread = pd.read_csv(summary / "distributions.tsv", sep="\t").set_index(["iteration", "quantity"])
    pairs = len((finished_run / "results/iter1/winprob/pairs.jsonl").read_text().splitlines())
    assert spread.loc[(1, "p_chosen"), "n"] == pairs and spread.loc[(1, "judge_score"), "n"] == 5 * pairs
    for t in (1, 2, 3):
        assert spread.loc[(t, "p_chosen"), "mean"] > 0.5 > spread.loc[(t, "p_rejected"), "mean"]

    lengths = pd.read_csv(summary / "lengths.tsv", sep="\t", keep_default_na=False)
    assert list(zip(lengths["responses"], lengths["iteration"], strict=True)) == [
        ("samples", 1),
        ("samples", 2),
        ("samples", 3),
        ("answers", 0),
        ("answers", 1),
        ("answers", 2),
        ("answers", 3),
    ]
    assert lengths.loc[0, "n"] == 5 * pairs and (lengths.loc[3:, "n"] == 60).all()
    assert (lengths["mean_tokens"] > 0).all() and (lengths["mean_chars"] > 0).all()
    assert (lengths.loc[:2, "cut_by_judge"].astype(float) == 0).all()  # the synthetic judge cuts nothing
    assert (lengths.loc[3:, "cut_by_judge"] == "").all()  # not recorded for the evaluation judge
    # generation's cut share is the generate shards' share of finish reason "length"; every
    # bundled prompt fits the tiny model's context, none is cut or dropped before generation
    reasons = [
        f
        for s in range(2)
        for row in io.read_jsonl(finished_run / f"results/iter1/generate/shard{s}.jsonl")
        for f in row["finish_reasons"]
    ]
    assert lengths.loc[0, "cut_by_generation"] == pytest.approx(
        reasons.count("length") / len(reasons), abs=1e-6
    )
    assert ((lengths["prompts_cut"] == 0) & (lengths["prompts_dropped"] == 0)).all()

    used = pd.read_csv(summary / "resources.tsv", sep="\t", keep_default_na=False)
    stages = [
        "basemodel",
        "evaluate",
        "evaluate_answers",
        "generate",
        "rank",
        "reflogp",
        "split",
        "train",
        "winprob",
    ]
    assert sorted(set(used["stage"])) == stages
    assert used[used["stage"] == "generate"]["jobs"].tolist() == [2, 2, 2]  # two shards
    assert (used["seconds"] > 0).all()

    shown = pd.read_csv(summary / "samples.tsv", sep="\t")
    assert shown.groupby("policy")["id"].apply(tuple).nunique() == 1  # the same prompts for every π_t
    assert sorted(set(shown["policy"])) == ["π_0", "π_1", "π_2", "π_3"] and len(shown) == 4 * 4
    assert (shown[shown["iteration"] == 0]["preference_over_pi0"] == 0.5).all()

    card = json.loads((summary / "run_card.json").read_text())
    assert card["audit"]["passed"], card["audit"]["report"]
    assert card["config"]["report"] == {"samples": 4} and card["config"]["seed"] == 42
    assert [m["value"]["hostname"] for m in card["machines"]] == [socket.gethostname()]
    assert re.fullmatch(r"[0-9a-f]{40}", card["code"][0]["value"]["git_commit"])
    assert card["software"][0]["value"]["snakemake"] and card["jobs"] >= 30


def test_more_samples_rerun_only_the_samples_table_and_the_run_card(copy_run):
    run = copy_run()
    assert scheduled_jobs(run, "iter3") == {}  # a moved run (the copy) reruns nothing, the card neither
    write_config(run, {"report": {"samples": 6}})
    assert scheduled_jobs(run, "iter3") == {"report_samples": 1, "run_card": 1, "iter3": 1}


PROGRESS = re.compile(r"(\d+)/(\d+) [\w ]+ \((\d+\.\d) s, (\d+\.\d|inf) [\w ]+/s\)")


@pytest.mark.parametrize(
    "log",
    [
        "generate/iter2/shard0.log",
        "rank/iter2/shard1.log",
        "reflogp/iter2/shard0.log",
        "train/iter2.log",
        "evaluate/iter2/answers.log",
        "evaluate/iter2/metrics.log",
    ],
)
def test_long_jobs_log_counts_rate_and_elapsed_time(finished_run, log):
    found = PROGRESS.findall((finished_run / "logs" / log).read_text())
    assert found, f"no progress line in logs/{log}"
    done, total, _, _ = found[-1]
    assert done == total  # the last line says all is done


def chromium_driver():
    """Debian's headless Chromium through its chromedriver; without them the test skips, or fails under
    SPPO_REQUIRE_SERVICES=1 (conftest.missing_service)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver = shutil.which("chromedriver")
    if driver is None or shutil.which("chromium") is None:
        missing_service("no chromium or chromedriver: apt-get install chromium chromium-driver, as .ci/run")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_report_opens_in_a_browser_with_categories_figures_and_samples(finished_run, tmp_path):
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = tmp_path / "report.html"
    snakemake(finished_run, "--report", str(page))
    browser = chromium_driver()
    wait = WebDriverWait(browser, 20)
    # The menu slides in (CSS transitions) and is rebuilt by script: a click can land on a neighbour
    # still moving over the target, or on an element just replaced. Such a click is tried again.
    settled = WebDriverWait(
        browser, 20, ignored_exceptions=(ElementClickInterceptedException, StaleElementReferenceException)
    )

    def click(how: str, what: str):
        settled.until(lambda b: b.find_element(how, what).click() or True)

    def show(category: str, name: str, css: str):
        """Show results/summary/``name`` of ``category`` as a reader does (menu, category, eye icon)
        and return the element ``css`` finds there. The report is a script-built page: a click that
        lands while it is still building is lost, so the whole sequence is tried up to 3 times, from
        a blank page each time."""
        row = f"//tr[td[text()='results/summary/{name}']]//a[@iconname='eye']"
        for attempt in range(3):
            try:
                browser.get("about:blank")
                browser.get(page.as_uri())
                click(By.LINK_TEXT, category)
                click(By.XPATH, row)
                return wait.until(lambda b: b.find_element(By.CSS_SELECTOR, css))
            except TimeoutException:
                if attempt == 2:
                    raise

    try:
        browser.get(page.as_uri())
        wait.until(lambda b: b.find_element(By.LINK_TEXT, "Training"))
        listed = browser.find_element(By.TAG_NAME, "body").text.splitlines()
        assert set(CATEGORIES) <= set(listed), listed
        assert "SPPO: Self-Play Preference Optimization" in listed, listed  # the landing page

        for category, figures in FIGURES.items():
            for name in figures:
                image = show(category, name, f"img[src*='filename={name}']")
                wait.until(lambda b, i=image: i.get_property("naturalWidth") > 100)  # decoded, not broken

        frame = show("Samples", "samples.html", "iframe[src*='filename=samples.html']")
        browser.switch_to.frame(frame)
        header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#samples thead th")]
        assert header == ["prompt", "π_0", "π_1", "π_2", "π_3"]
        rows = browser.find_elements(By.CSS_SELECTOR, "#samples tbody tr")
        assert len(rows) == 4 and "preference over π_0: 0.500" in rows[0].text
        browser.switch_to.default_content()

        # the headline table, as HTML the report shows
        frame = show("Summary", "metrics.html", "iframe[src*='filename=metrics.html']")
        browser.switch_to.frame(frame)
        header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "thead th")]
        assert header[:4] == ["iteration", "model", "n_prompts", "win_rate"]
        assert len(browser.find_elements(By.CSS_SELECTOR, "tbody tr")) == 4  # π_0 … π_3
        browser.switch_to.default_content()

        frame = show("Run card", "run_card.html", "iframe[src*='filename=run_card.html']")
        browser.switch_to.frame(frame)
        assert "provenance audit: passed" in browser.find_element(By.ID, "audit").text
        browser.switch_to.default_content()

        show("Training", "training.png", "img[src*='filename=training.png']")  # as in docs/report.png
        shot = tmp_path / "report.png"
        browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == PNG
    finally:
        browser.quit()
