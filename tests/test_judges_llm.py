"""The LLM judge (sppo/judges/llm.py) against a real OpenAI-compatible server: `transformers serve`
on localhost, serving tiny models built here from a local directory (offline).

Two copies of the tiny test model are served by the same server (it loads the model a request
names): "verdict", whose generation_config suppresses every token except those that read a or b,
so it always answers with a verdict; and "garbage", which suppresses exactly those, so it never
does. transformers serve ignores `logprobs`/`top_logprobs` (it logs "Ignoring unsupported fields"),
so here the verdicts come from the text; the log-prob arithmetic is tested on a recorded answer in
OpenAI's format with numbers worked by hand. Requests are counted from the server's own access log.
"""

from __future__ import annotations

import http.server
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import missing_service, scheduled_jobs, snakemake, write_config

from sppo.judges import load_judge
from sppo.judges.llm import EPSILON, LLMJudge, fill, logprob_preference, parse_verdict
from sppo.judges.llm_client import ChatClient, EndpointError

PROMPTS = ["Name a colour.", "Say hello."]
CANDIDATES = [["red", "blue", "the sky"], ["hello", "hi there", "good day"]]  # K = 3: 3 pairs each
POST = '"POST /v1/chat/completions HTTP/1.1"'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_copy(model_dir: Path, dest: Path, keep_verdicts: bool) -> Path:
    """A copy of ``model_dir`` whose generation config suppresses every token but the verdict
    tokens (``keep_verdicts``) or exactly those (not ``keep_verdicts``)."""
    from transformers import AutoTokenizer

    shutil.copytree(model_dir, dest)
    tokenizer = AutoTokenizer.from_pretrained(dest)
    verdict = {
        i
        for tok, i in tokenizer.get_vocab().items()
        if parse_verdict(tokenizer.convert_tokens_to_string([tok]))
    }
    assert verdict, "the tiny tokenizer has no token reading a or b"
    config_path = dest / "generation_config.json"
    config = json.loads(config_path.read_text())
    vocab = range(len(tokenizer))
    config["suppress_tokens"] = [i for i in vocab if (i not in verdict) == keep_verdicts]
    config_path.write_text(json.dumps(config))
    return dest


class Server:
    def __init__(self, base_url: str, log_path: Path, models: dict[str, str]):
        self.base_url, self.log_path, self.models = base_url, log_path, models

    def requests(self) -> int:
        """Chat-completion requests the server has answered, from its access log."""
        return self.log_path.read_text(errors="replace").count(POST)


@pytest.fixture(scope="session")
def llm_server(tiny_model_dir, tmp_path_factory):
    """`transformers serve` on a free localhost port, started once for the session."""
    root = tmp_path_factory.mktemp("llm_server")
    models = {
        "verdict": str(served_copy(tiny_model_dir, root / "verdict", keep_verdicts=True)),
        "garbage": str(served_copy(tiny_model_dir, root / "garbage", keep_verdicts=False)),
    }
    executable = Path(sys.executable).with_name("transformers")
    if not executable.is_file():
        missing_service(f"no `transformers` command beside {sys.executable}")
    port = free_port()
    log_path = root / "server.log"
    (root / "hub").mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(root / "hub"), "PYTHONUNBUFFERED": "1"}
    command = [str(executable), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                httpx.get(f"{base_url}/models", timeout=5)  # any HTTP answer means it listens
                break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                missing_service(f"`transformers serve` did not start (needs transformers[serving]): {tail}")
            time.sleep(0.5)
        yield Server(base_url, log_path, models)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def make_judge(server: Server, model: str, cache: Path | None, **settings) -> LLMJudge:
    return LLMJudge(base_url=server.base_url, model=server.models[model], cache_path=cache, **settings)


def test_verdicts(tmp_path):
    assert [parse_verdict(t) for t in ["a", " B.", "(a)", "Output (b)", "**a**"]] == ["a", "b", "a", "b", "a"]
    assert [parse_verdict(t) for t in ["", "ab", "c", "\n", None, "both"]] == [None] * 6
    # one pass: an answer that holds a placeholder is not filled in again
    assert fill("{instruction}|{output_a}|{output_b}", "i", "{output_b}", "y") == "i|{output_b}|y"


def test_logprob_arithmetic_on_a_recorded_answer():
    """p = P(a) / (P(a) + P(b)) from the top log-probs of the first verdict token (OpenAI's format)."""
    recorded = [  # the model wrote "Output (a)": the verdict is at the third token
        {"token": "Output", "logprob": -0.01, "top_logprobs": [{"token": "Output", "logprob": -0.01}]},
        {"token": " (", "logprob": -0.02, "top_logprobs": [{"token": " (", "logprob": -0.02}]},
        {
            "token": "a",
            "logprob": math.log(0.6),
            "top_logprobs": [
                {"token": "a", "logprob": math.log(0.6)},
                {"token": " A", "logprob": math.log(0.1)},  # reads a too: P(a) = 0.6 + 0.1
                {"token": "b", "logprob": math.log(0.2)},
                {"token": "c", "logprob": math.log(0.05)},  # neither: left out
            ],
        },
    ]
    # by hand: 0.7 / (0.7 + 0.2) = 7/9; exp(log(x)) round-trips to ~1e-16, so 1e-12 is ample
    assert logprob_preference(recorded) == pytest.approx(7 / 9, abs=1e-12)
    only_a = [{"token": "a", "logprob": -0.1, "top_logprobs": [{"token": "a", "logprob": -0.1}]}]
    assert logprob_preference(only_a) == 1.0
    assert logprob_preference(None) is None  # no log-probs came back: the parsed verdict decides
    assert logprob_preference([{"token": "x", "logprob": 0.0, "top_logprobs": []}]) is None


def test_pair_preference_by_hand():
    """Both orders combined: p_ij = mean(p_ab, 1 − p_ba), each from log-probs where present, else text."""
    judge = LLMJudge(base_url="http://127.0.0.1:1/v1", model="m")  # no request is sent here
    weighted = [
        {
            "token": "a",
            "logprob": math.log(0.7),
            "top_logprobs": [
                {"token": "a", "logprob": math.log(0.7)},
                {"token": "b", "logprob": math.log(0.2)},
            ],
        }
    ]
    ab = {"content": "a", "logprobs": weighted}  # p_ab = 0.7 / 0.9 = 7/9 (i, shown first, wins)
    # j shown first, the verdict "b" from the text alone: p_ba = 0, so i wins again: no flip
    assert judge.pair_preference(ab, {"content": "b", "logprobs": None}) == pytest.approx(
        (7 / 9 + 1) / 2, abs=1e-12
    )
    # "a" with j first: the first position won both times, a flip; p = (7/9 + 0) / 2
    assert judge.pair_preference(ab, {"content": "a", "logprobs": None}) == pytest.approx(7 / 18, abs=1e-12)
    # one answer unparseable: the other alone decides, and it is counted
    assert judge.pair_preference(ab, {"content": "maybe", "logprobs": None}) == pytest.approx(
        7 / 9, abs=1e-12
    )
    garbage = {"content": "?", "logprobs": None}
    assert judge.pair_preference(garbage, garbage) == 0.5
    usage = judge.usage()
    assert (usage["logprobs"], usage["text"], usage["unparseable"]) == (3, 2, 3)
    assert (usage["pairs"], usage["order_flips"], usage["unjudged_pairs"]) == (4, 1, 1)


def test_rank_stage_through_the_llm_judge(llm_server):
    """rank.rank_rows with the llm judge: the stored matrix gives winprob's P_ij = p_ij of the answers."""
    from sppo import rank, winprob

    judge = make_judge(llm_server, "verdict", None)
    rows = [{"id": "q0", "prompt": PROMPTS[0], "responses": CANDIDATES[0]}]
    ranked, truncated = rank.rank_rows(judge, rows, chunk_prompts=1)
    assert truncated == {} and len(ranked[0]["logits"]) == 3
    records = judge.cache.records.values()
    content = {(r["order"], r["key"]): r["content"] for r in records}
    assert len(content) == 6
    p = winprob.from_logits(ranked[0]["logits"])
    for i in range(3):
        for j in range(i + 1, 3):
            first_ab = (
                content[("ab", judge_key(judge, PROMPTS[0], CANDIDATES[0][i], CANDIDATES[0][j], "ab"))] == "a"
            )
            first_ba = (
                content[("ba", judge_key(judge, PROMPTS[0], CANDIDATES[0][j], CANDIDATES[0][i], "ba"))] == "a"
            )
            expected = (float(first_ab) + 1.0 - float(first_ba)) / 2
            # p is clipped to [1e-6, 1 − 1e-6] before the logit; σ(logit(p)) returns it to ~1e-15
            assert p[i, j] == pytest.approx(min(max(expected, EPSILON), 1 - EPSILON), abs=1e-12)


def test_backoff_schedule():
    client = ChatClient("http://127.0.0.1:1/v1", "m", api_key=None, timeout=1, retries=3, backoff=0.5)
    # 0.5 · 2^attempt, a longer Retry-After wins, all capped at 60 s
    assert [client.delay(a, None) for a in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert client.delay(0, "7") == 7.0 and client.delay(3, "1") == 4.0 and client.delay(0, "999") == 60.0


def test_judge_asks_both_orders_and_caches(llm_server, tmp_path):
    cache = tmp_path / "cache.jsonl"
    before = llm_server.requests()
    judge = make_judge(llm_server, "verdict", cache, max_concurrency=4)
    verdict = judge.judge(PROMPTS, CANDIDATES)
    usage = judge.usage()
    # 2 prompts × 3 pairs × 2 orders, every one answered by the server
    assert llm_server.requests() - before == 12
    assert usage["requests"] == 12 and usage["cached"] == 0 and usage["pairs"] == 6
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] == 12  # max_tokens 1
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(records) == 12 and sorted(r["order"] for r in records) == ["ab"] * 6 + ["ba"] * 6
    # transformers serve returns no log-probs, so every verdict is read from the text
    assert all(r["logprobs"] is None for r in records)
    assert usage["text"] == 12 and usage["logprobs"] == 0 and usage["unparseable"] == 0
    # the matrix from the server's own answers, by hand: ab says who won with i first, ba with j first
    by_key = {r["key"]: r for r in records}
    flips = 0
    for n, prompt in enumerate(PROMPTS):
        for i in range(3):
            for j in range(i + 1, 3):
                ab = by_key[judge_key(judge, prompt, CANDIDATES[n][i], CANDIDATES[n][j], "ab")]
                ba = by_key[judge_key(judge, prompt, CANDIDATES[n][j], CANDIDATES[n][i], "ba")]
                first_ab, first_ba = parse_verdict(ab["content"]) == "a", parse_verdict(ba["content"]) == "a"
                p = (float(first_ab) + 1.0 - float(first_ba)) / 2  # i wins: a with i first, b with j first
                flips += first_ab == first_ba
                expected = math.log(
                    min(max(p, EPSILON), 1 - EPSILON) / (1 - min(max(p, EPSILON), 1 - EPSILON))
                )
                # logit of the same clipped p: equal up to float64 rounding of log (1e-9 is ample)
                assert verdict.logits[n, i, j] == pytest.approx(expected, abs=1e-9)
                assert verdict.logits[n, j, i] == pytest.approx(-expected, abs=1e-9)
    assert usage["order_flips"] == flips
    # a new job on the same cache sends nothing and gives the same matrix
    again = make_judge(llm_server, "verdict", cache)
    np.testing.assert_array_equal(again.judge(PROMPTS, CANDIDATES).logits, verdict.logits)
    assert llm_server.requests() - before == 12
    assert again.usage()["requests"] == 0 and again.usage()["cached"] == 12
    # a job killed mid-write leaves a torn line: skipped and counted, the rest still reused
    with open(cache, "a") as f:
        f.write('{"key": "trunc')
    torn = make_judge(llm_server, "verdict", cache)
    torn.judge(PROMPTS[:1], CANDIDATES[:1])
    assert torn.usage()["cache_torn_lines"] == 1 and torn.usage()["requests"] == 0
    assert llm_server.requests() - before == 12
    # a new request after the torn line starts a line of its own, so the next job reads it back
    torn.judge(["A new prompt."], [["x", "y"]])
    assert torn.usage()["requests"] == 2 and llm_server.requests() - before == 14
    assert make_judge(llm_server, "verdict", cache).cache.torn_lines == 1  # the fragment alone


def judge_key(judge: LLMJudge, prompt: str, first: str, second: str, order: str) -> str:
    from sppo.judges.llm_client import request_key

    return request_key([judge.model, judge.template_sha256, judge.settings, prompt, first, second, order])


def test_equal_responses_are_asked_once(llm_server):
    """K = 3 with two equal responses: the pair (x, x) is asked once per order, and the two pairs
    (x, y) share their requests: 2 distinct pairs × 2 orders reach the server, not 3 × 2."""
    before = llm_server.requests()
    judge = make_judge(llm_server, "verdict", None)
    judge.judge(["Pick one."], [["same", "same", "other"]])
    assert judge.usage()["requests"] == 4 == llm_server.requests() - before
    assert judge.usage()["pairs"] == 3


def test_garbage_answers_are_counted(llm_server):
    judge = make_judge(llm_server, "garbage", None)
    verdict = judge.judge(PROMPTS[:1], CANDIDATES[:1])
    usage = judge.usage()
    assert usage["unparseable"] == 6 and usage["text"] == 0 and usage["unjudged_pairs"] == 3
    np.testing.assert_array_equal(verdict.logits, np.zeros((1, 3, 3)))  # p = 0.5, counted above


def test_api_key_stays_out_of_every_record(llm_server, tmp_path, monkeypatch, caplog):
    secret = "sk-test-5f0c1e-never-print-me"
    monkeypatch.setenv("SPPO_TEST_JUDGE_KEY", secret)
    cache = tmp_path / "cache.jsonl"
    settings = {"base_url": llm_server.base_url, "model": llm_server.models["verdict"]}
    config = {"eval": "llm", "llm": {**settings, "api_key_env": "SPPO_TEST_JUDGE_KEY"}}
    with caplog.at_level(logging.DEBUG):
        judge = load_judge(config, "eval", cache_path=cache)
        judge.judge(PROMPTS[:1], [CANDIDATES[0][:2]])
    assert judge.client._http.headers["authorization"] == f"Bearer {secret}"  # it is sent
    for text in [cache.read_text(), json.dumps(judge.identity()), json.dumps(judge.usage()), caplog.text]:
        assert secret not in text
    assert judge.identity()["api_key_env"] == "SPPO_TEST_JUDGE_KEY"
    monkeypatch.delenv("SPPO_TEST_JUDGE_KEY")
    with pytest.raises(ValueError, match="SPPO_TEST_JUDGE_KEY is not set"):
        load_judge(config, "eval")


def test_server_down_names_the_endpoint(tmp_path):
    base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    judge = LLMJudge(
        base_url=base_url,
        model="judge-model",
        retries=2,
        backoff=0,
        max_concurrency=1,
        cache_path=tmp_path / "c.jsonl",
    )
    with pytest.raises(
        EndpointError, match=rf"{base_url}/chat/completions \(model 'judge-model'\) failed after 3"
    ):
        judge.judge(PROMPTS[:1], [CANDIDATES[0][:2]])
    assert judge.usage()["retries"] == 2  # the first request, retried twice; the second never starts
    assert not (tmp_path / "c.jsonl").exists()


class FlakyProxy(http.server.BaseHTTPRequestHandler):
    """Answers the first POSTs with ``canned`` (status, body) pairs, forwards the rest to the real server."""

    target = ""
    canned: list[tuple[int, bytes]] = []
    seen = 0

    def do_POST(self):  # noqa: N802 (http.server's name)
        type(self).seen += 1
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).seen <= len(self.canned):
            status, text = self.canned[type(self).seen - 1]
            self.send_response(status)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
            return
        answer = httpx.post(
            self.target + self.path, content=body, headers={"Content-Type": "application/json"}
        )
        self.send_response(answer.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args):
        pass


def through_proxy(server: Server, canned: list[tuple[int, bytes]]) -> LLMJudge:
    """Judge one pair through a :class:`FlakyProxy` in front of ``server``."""
    FlakyProxy.target, FlakyProxy.canned, FlakyProxy.seen = server.base_url.removesuffix("/v1"), canned, 0
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    judge = LLMJudge(
        base_url=f"http://127.0.0.1:{proxy.server_address[1]}/v1",
        model=server.models["verdict"],
        max_concurrency=1,
        backoff=0.01,
    )
    try:
        judge.judge(PROMPTS[:1], [CANDIDATES[0][:2]])
    finally:
        proxy.shutdown()
    return judge


def test_429_then_success(llm_server):
    """A proxy in front of the real server refuses the first request with 429 (transformers serve has
    no rate limit to hit): the client waits, retries, and gets the server's answer."""
    before = llm_server.requests()
    judge = through_proxy(llm_server, [(429, b"")])
    assert FlakyProxy.seen == 3 and llm_server.requests() - before == 2
    assert judge.usage()["retries"] == 1 and judge.usage()["requests"] == 2


def test_an_answer_that_is_no_chat_completion(llm_server):
    """A 200 whose body is not a chat completion (a captive portal, a misrouted URL) fails at once."""
    with pytest.raises(
        EndpointError, match=r"/chat/completions \(model .*\) sent no chat completion: '<html>"
    ):
        through_proxy(llm_server, [(200, b"<html>sign in</html>")])
    assert FlakyProxy.seen == 1


def write_answers(workdir: Path) -> None:
    """π_0's and π_1's answers to six held-out prompts, as rule evaluate_answers writes them."""
    for t in (0, 1):
        rows = [
            {
                "id": f"p{i}",
                "prompt": f"Question number {i}?",
                "output": ("answer " * (i + 1 + 3 * t)).strip(),
            }
            for i in range(6)
        ]
        path = workdir / f"results/iter{t}/evaluate/answers.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_one_evaluate_job_through_the_llm_judge(llm_server, workflow):
    """Rule evaluate alone (the answers written here), first with the endpoint down, then up."""
    write_answers(workflow)
    target = ("results/iter1/evaluate/metrics.json", "--allowed-rules", "evaluate")
    down = {"base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "judge-model", "retries": 0}
    write_config(workflow, {"judge": {"eval": "llm", "llm": down}})
    failed = snakemake(workflow, *target, check=False)
    assert failed.returncode != 0
    log = (workflow / "logs/evaluate/iter1/metrics.log").read_text()
    assert f"{down['base_url']}/chat/completions (model 'judge-model') failed after 1 attempts" in log
    assert not list((workflow / "results/iter1/evaluate").glob("*.json"))  # nothing published
    before = llm_server.requests()
    up = {"base_url": llm_server.base_url, "model": llm_server.models["verdict"], "max_concurrency": 2}
    write_config(workflow, {"judge": {"eval": "llm", "llm": up}})
    snakemake(workflow, *target)
    metrics = json.loads((workflow / "results/iter1/evaluate/metrics.json").read_text())
    assert metrics["judge"]["name"] == "llm" and metrics["n_prompts"] == 6
    # the cost line: one pair per prompt, both orders, each request answered by the server
    assert metrics["judge_usage"]["requests"] == 12 == llm_server.requests() - before
    assert metrics["judge_usage"]["prompt_tokens"] > 0 and metrics["judge_usage"]["unparseable"] == 0


def test_llm_as_extra_judge_beside_the_training_judge(llm_server, workflow):
    """evaluate.extra_judges [llm]: one evaluate_judge job per trained π_t is planned (none without the
    key), and for iteration 1 the job and the report put the synthetic training judge and the llm
    judge side by side on the same answers."""
    for t in (0, 1):  # π_1 shouts on even prompts, which the synthetic judge (lower case) dislikes
        rows = [
            {"id": f"p{i}", "prompt": f"Question number {i}?", "output": "answer " * (i + 1 + 3 * t)}
            for i in range(6)
        ]
        for row in rows[::2] if t else []:
            row["output"] = row["output"].upper()
        path = workflow / f"results/iter{t}/evaluate/answers.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert "evaluate_judge" not in scheduled_jobs(workflow, "iter3")
    llm = {"base_url": llm_server.base_url, "model": llm_server.models["verdict"], "max_concurrency": 2}
    write_config(workflow, {"evaluate": {"extra_judges": ["llm"]}, "judge": {"llm": llm}})
    planned = scheduled_jobs(workflow, "iter3")
    assert planned["evaluate_judge"] == 3 and planned["report_judges"] == 1
    write_config(workflow, {"iterations": 1, "evaluate": {"extra_judges": ["llm"]}, "judge": {"llm": llm}})
    before = llm_server.requests()
    allowed = ("--allowed-rules", "evaluate", "evaluate_judge", "report_judges")
    snakemake(workflow, "results/summary/judges.tsv", *allowed)
    table = pd.read_csv(workflow / "results/summary/judges.tsv", sep="\t")
    assert table["judge"].tolist() == ["synthetic", "llm"]
    assert table["role"].tolist() == ["train+eval", "extra"]
    judged = {
        name: json.loads((workflow / f"results/iter1/evaluate/{sub}annotations.json").read_text())
        for name, sub in (("synthetic", ""), ("llm", "judges/llm/"))
    }
    metrics = json.loads((workflow / "results/iter1/evaluate/judges/llm/metrics.json").read_text())
    assert table["win_rate"].iloc[1] == pytest.approx(metrics["win_rate"], abs=1e-6)  # TSV: 6 decimals
    # agreement counted here from the two judges' annotation files: same side of 0.5 on a prompt
    side = {n: {a["id"]: np.sign(a["preference"] - 1.5) for a in ann} for n, ann in judged.items()}
    same = np.mean([side["synthetic"][i] == side["llm"][i] for i in side["llm"]])
    assert table["agreement_with_train"].iloc[1] == pytest.approx(same, abs=1e-6)
    assert [a["output_2"] for a in judged["llm"]] == [a["output_2"] for a in judged["synthetic"]]
    # the cost line: 6 pairs, both orders, each request answered by the server
    assert table["judge_requests"].iloc[1] == 12 == llm_server.requests() - before
    assert (workflow / "results/summary/judges.png").stat().st_size > 0


def test_alpaca_eval_through_the_local_endpoint(llm_server, tmp_path, monkeypatch):
    """alpaca_eval's own evaluate, its annotator the served model (a text-parsing config for the
    endpoint), on six instructions in AlpacaEval's format: one request per pair, alpaca_eval's
    metrics follow from its annotations, a rerun is answered from alpaca_eval's cache, and the API
    key is written to no file."""
    from sppo import alpaca_eval

    secret = "sk-test-alpaca-never-write-me"
    monkeypatch.setenv("SPPO_TEST_ALPACA_KEY", secret)

    instructions = [f"Instruction {i}: say something." for i in range(6)]
    reference = [
        {"instruction": x, "output": "ok " * (i + 1), "generator": "ref"} for i, x in enumerate(instructions)
    ]
    outputs = [
        {"instruction": x, "output": "fine " * (6 - i), "generator": "m"} for i, x in enumerate(instructions)
    ]
    annotator = alpaca_eval.write_local_annotator(
        tmp_path / "annotator",
        base_url=llm_server.base_url,
        model=llm_server.models["verdict"],
        max_tokens=1,  # the served model answers one letter token
        concurrency=2,
    )
    before = llm_server.requests()
    row, annotations = alpaca_eval.evaluate(
        outputs,
        reference,
        annotator,
        output_dir=tmp_path / "out",
        glm="length_controlled_minimal",
        api_key_env="SPPO_TEST_ALPACA_KEY",
    )
    assert llm_server.requests() - before == 6
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 3 and not [p for p in written if secret in p.read_text(errors="replace")]
    assert os.environ.get("OPENAI_API_KEY") != secret  # set for the call only
    preference = np.array([a["preference"] for a in annotations], dtype=float)
    assert len(preference) == 6 and set(preference) <= {1.0, 2.0}  # every verdict parsed
    assert row["n_total"] == 6
    # alpaca_eval's win rate in percent: mean(preference − 1) · 100 (no ties here)
    assert row["win_rate"] == pytest.approx((preference - 1).mean() * 100, abs=1e-9)
    assert 0 <= row["length_controlled_winrate"] <= 100
    again, _ = alpaca_eval.evaluate(
        outputs, reference, annotator, output_dir=tmp_path / "out2", glm="length_controlled_minimal"
    )
    assert llm_server.requests() - before == 6 and again["win_rate"] == row["win_rate"]


def test_alpaca_eval_target_for_pi0(llm_server, workflow):
    """alpaca_eval.enabled with the local annotator: π_0 answers six instructions in AlpacaEval's
    format, a local file (rules evaluate_alpaca_instructions, evaluate_alpaca_answers) and
    alpaca_eval judges them through the served model (rule evaluate_alpaca); the metrics are
    alpaca_eval's, as fractions."""
    instructions = [
        {"instruction": f"Instruction {i}: say something.", "output": "ok " * (i + 1), "generator": "ref"}
        for i in range(6)
    ]
    (workflow / "data/alpaca.json").write_text(json.dumps(instructions))
    settings = {
        "enabled": True,
        "instructions": "data/alpaca.json",
        "base_url": llm_server.base_url,
        "model": llm_server.models["verdict"],
        "max_tokens": 1,
        "glm": "length_controlled_minimal",
    }
    write_config(workflow, {"alpaca_eval": settings})
    before = llm_server.requests()
    snakemake(workflow, "results/iter0/evaluate/alpaca/metrics.json")
    # a local instruction file: rule evaluate_alpaca_instructions checks it and the others read its copy
    assert json.loads((workflow / "results/evaluate/alpaca/instructions.json").read_text()) == instructions
    outputs = json.loads((workflow / "results/iter0/evaluate/alpaca/outputs.json").read_text())
    assert [o["instruction"] for o in outputs] == [i["instruction"] for i in instructions]
    assert {o["generator"] for o in outputs} == {"tiny"}
    metrics = json.loads((workflow / "results/iter0/evaluate/alpaca/metrics.json").read_text())
    annotations = json.loads((workflow / "results/iter0/evaluate/alpaca/annotations.json").read_text())
    assert metrics["n_total"] == 6 == llm_server.requests() - before  # one request per instruction
    # alpaca_eval's win rate: mean(preference − 1), π_0's output being output_2 (no ties: one letter)
    assert metrics["win_rate"] == pytest.approx(np.mean([a["preference"] - 1 for a in annotations]), abs=1e-9)
    assert metrics["glm"] == "length_controlled_minimal" and 0 <= metrics["lc_win_rate"] <= 1
    # alpaca_eval.generator (the authors' Mistral config) reaches the answers' job: it, and what reads
    # its outputs, would run again; nothing else
    target = "results/iter0/evaluate/alpaca/metrics.json"
    assert scheduled_jobs(workflow, target) == {}
    write_config(workflow, {"alpaca_eval": {**settings, "generator": "SPPO-Mistral7B-PairRM"}})
    assert scheduled_jobs(workflow, target) == {"evaluate_alpaca_answers": 1, "evaluate_alpaca": 1}


def test_alpaca_eval_named_annotator_pointed_at_an_endpoint(tmp_path):
    """An alpaca_eval config by name (the leaderboard's) sent to another endpoint: the same settings,
    its requests through a client config holding only the base URL (no key), its template found."""
    import yaml

    from sppo import alpaca_eval

    path = alpaca_eval.write_named_annotator(tmp_path, "weighted_alpaca_eval_gpt4_turbo", "http://h:1/v1")
    config = yaml.safe_load(path.read_text())["weighted_alpaca_eval_gpt4_turbo"]
    kwargs = config["completions_kwargs"]
    assert kwargs["model_name"] == "gpt-4-1106-preview" and kwargs["logprobs"] is True
    assert yaml.safe_load(open(kwargs["client_config_path"])) == {"default": [{"base_url": "http://h:1/v1"}]}
    assert "{instruction}" in open(config["prompt_template"]).read()
    with pytest.raises(ValueError, match="no annotator config 'gpt-9'"):
        alpaca_eval.write_named_annotator(tmp_path, "gpt-9", "http://h:1/v1")
