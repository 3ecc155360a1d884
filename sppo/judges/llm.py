"""An LLM as the judge, behind any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM,
SGLang, ``transformers serve``, a hosted API).

For every prompt and every pair i < j of its K candidates the judge is asked twice, AlpacaEval-style
("Output (a)" vs "Output (b)", answer with one letter): once with i shown as (a), once with j as (a).
Each answer gives the probability that the output shown first wins:

* from the verdict token's top log-probabilities where the endpoint returns them, as AlpacaEval's
  weighted annotators do: p = P(a) / (P(a) + P(b)), P(x) the summed probability of the tokens that
  read x (" a", "A", "(a" ...);
* else from the parsed verdict: 1 for "a", 0 for "b";
* else (neither) the answer is *unparseable*: counted, and left out of the average.

The two orders are averaged, p_ij = mean(p_first(i, j), 1 − p_first(j, i)) (0.5 when both are
unparseable, counted apart), and a pair whose two verdicts name the same position ((a) twice or (b)
twice) counts as an order flip: the position-bias measure. The K×K matrix is the log-odds
M_ij = logit(p_ij) = −M_ji, p clipped to [ε, 1 − ε] with ε = 1e-6 (|M| ≤ 13.8), so
σ((M_ij − M_ji)/2) = p_ij and winprob reads it like any other judge's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from concurrent.futures import FIRST_EXCEPTION, CancelledError, ThreadPoolExecutor, wait
from importlib import resources
from pathlib import Path

import numpy as np

from sppo.judges.base import Judge, Judgement, scores_from_logits
from sppo.judges.llm_client import ChatClient, ResponseCache, request_key
from sppo.judges.model_judge import count_candidates

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # not one INFO line per request in the job's log
PROGRESS_EVERY = 200  # requests sent between progress lines in the log

EPSILON = 1e-6  # p is clipped to [ε, 1 − ε] before the logit: a unanimous verdict stays finite
PLACEHOLDERS = ("instruction", "output_a", "output_b")
_PLACEHOLDER = re.compile(r"\{(instruction|output_a|output_b)\}")
_VERDICT = re.compile(r"^[\W_]*(?:output\s*)?\(?\s*([ab])\s*\)?[\W_]*$")


def read_template(path: str | None) -> tuple[str, str]:
    """The template text and where it came from: ``path``, or the shipped ``templates/pairwise.txt``."""
    if path is None:
        text = resources.files("sppo.judges").joinpath("templates/pairwise.txt").read_text(encoding="utf-8")
        return text, "sppo/judges/templates/pairwise.txt"
    if not Path(path).is_file():
        raise FileNotFoundError(f"judge.llm.template: no such file {path!r}")
    text = Path(path).read_text(encoding="utf-8")
    missing = [name for name in PLACEHOLDERS if "{" + name + "}" not in text]
    if missing:
        raise ValueError(f"judge.llm.template {path!r} lacks the placeholders {missing}")
    return text, path


def fill(template: str, instruction: str, output_a: str, output_b: str) -> str:
    """``template`` with its placeholders filled in one pass (an answer holding "{output_b}" stays)."""
    values = {"instruction": instruction, "output_a": output_a, "output_b": output_b}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def parse_verdict(text: str | None) -> str | None:
    """ "a" or "b" from an answer such as "a", " B.", "(a)", "Output (b)"; None for anything else."""
    match = _VERDICT.match((text or "").strip().lower())
    return match.group(1) if match else None


def logprob_preference(tokens: list[dict] | None) -> float | None:
    """P(a) / (P(a) + P(b)) at the first generated token that reads a or b, from its top log-probs
    (OpenAI's ``choices[0].logprobs.content``: [{token, logprob, top_logprobs: [{token, logprob}]}]);
    None when no token reads a or b, or no log-probs came back."""
    for position in tokens or []:
        if parse_verdict(position.get("token")) is None:
            continue
        mass = {"a": 0.0, "b": 0.0}
        for candidate in position.get("top_logprobs") or []:
            verdict = parse_verdict(candidate.get("token"))
            if verdict is not None:
                mass[verdict] += float(np.exp(candidate["logprob"]))
        total = mass["a"] + mass["b"]
        return mass["a"] / total if total > 0 else None
    return None


def first_wins(record: dict) -> tuple[float | None, str]:
    """The probability that the output shown first wins, from a cached answer, and its source
    ("logprobs", "text" or "unparseable")."""
    p = logprob_preference(record.get("logprobs"))
    if p is not None:
        return p, "logprobs"
    verdict = parse_verdict(record.get("content"))
    if verdict is not None:
        return (1.0 if verdict == "a" else 0.0), "text"
    return None, "unparseable"


class LLMJudge(Judge):
    name = "llm"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        template: str | None = None,
        api_key_env: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 1.0,
        max_tokens: int = 1,
        temperature: float = 0.0,
        logprobs: bool = True,
        top_logprobs: int = 20,
        cache_path: str | os.PathLike | None = None,
    ):
        if not base_url or not model:
            raise ValueError("judge.llm.base_url and judge.llm.model must be set")
        api_key = None
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise ValueError(f"judge.llm.api_key_env: the environment variable {api_key_env} is not set")
        self.template, self.template_source = read_template(template)
        self.template_sha256 = hashlib.sha256(self.template.encode("utf-8")).hexdigest()
        self.settings = {"max_tokens": max_tokens, "temperature": temperature}
        if logprobs:
            self.settings |= {"logprobs": True, "top_logprobs": top_logprobs}
        self.base_url, self.model, self.api_key_env = base_url, model, api_key_env
        self.max_concurrency = max_concurrency
        self.client = ChatClient(
            base_url, model, api_key=api_key, timeout=timeout, retries=retries, backoff=backoff
        )
        self.cache = ResponseCache(cache_path)
        self.counts = dict.fromkeys(
            ["requests", "cached", "prompt_tokens", "completion_tokens", "logprobs", "text", "unparseable"], 0
        )
        self.counts |= {"pairs": 0, "order_flips": 0, "unjudged_pairs": 0}
        self._lock = threading.Lock()  # ask() runs in max_concurrency threads

    def ask(self, instruction: str, first: str, second: str, order: str) -> dict:
        """The cached answer for showing ``first`` as (a) and ``second`` as (b), sent only if missing."""
        key = request_key(
            [self.model, self.template_sha256, self.settings, instruction, first, second, order]
        )
        record = self.cache.get(key)
        if record is not None:
            with self._lock:
                self.counts["cached"] += 1
            return record
        body = {"messages": [{"role": "user", "content": fill(self.template, instruction, first, second)}]}
        response = self.client.complete(body | self.settings)
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        record = {
            "key": key,
            "model": self.model,
            "order": order,
            "content": (choice.get("message") or {}).get("content"),
            "logprobs": (choice.get("logprobs") or {}).get("content"),
            "usage": {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")},
        }
        self.cache.put(record)
        with self._lock:
            self.counts["requests"] += 1
            for k in ("prompt_tokens", "completion_tokens"):
                self.counts[k] += int(usage.get(k) or 0)
            if self.counts["requests"] % PROGRESS_EVERY == 0:
                log.info(
                    "%d requests sent, %d answered from the cache",
                    self.counts["requests"],
                    self.counts["cached"],
                )
        return record

    def _ask_all(self, questions: list[tuple]) -> list[dict]:
        """:meth:`ask` for each question, at most ``max_concurrency`` at a time, a repeated question
        (two equal responses of one prompt) sent once; the first failure cancels what has not
        started and is raised (what finished is in the cache)."""
        stop = threading.Event()

        def guarded(question: tuple) -> dict:
            if stop.is_set():
                raise CancelledError  # an earlier request failed for good: send nothing more
            try:
                return self.ask(*question)
            except BaseException:
                stop.set()
                raise

        with ThreadPoolExecutor(self.max_concurrency) as pool:
            futures = {q: pool.submit(guarded, q) for q in dict.fromkeys(questions)}
            done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                pool.shutdown(cancel_futures=True)
                raise next(f.exception() for f in failed if not isinstance(f.exception(), CancelledError))
            return [futures[q].result() for q in questions]

    def pair_preference(self, ab: dict, ba: dict) -> float:
        """p_ij from the answers with i first (``ab``) and j first (``ba``); counts sources and flips."""
        p_ab, source_ab = first_wins(ab)
        p_ba, source_ba = first_wins(ba)
        self.counts[source_ab] += 1
        self.counts[source_ba] += 1
        self.counts["pairs"] += 1
        seen = [p for p in (p_ab, None if p_ba is None else 1.0 - p_ba) if p is not None]
        if not seen:
            self.counts["unjudged_pairs"] += 1
            return 0.5
        if p_ab is not None and p_ba is not None and p_ab != 0.5 and p_ba != 0.5:
            self.counts["order_flips"] += (p_ab > 0.5) == (p_ba > 0.5)  # the same position won twice
        return float(np.mean(seen))

    def judge(self, prompts: list[str], candidates: list[list[str]]) -> Judgement:
        k = count_candidates(prompts, candidates)
        pairs = [(n, i, j) for n in range(len(prompts)) for i in range(k) for j in range(i + 1, k)]
        questions = []
        for n, i, j in pairs:
            questions.append((prompts[n], candidates[n][i], candidates[n][j], "ab"))
            questions.append((prompts[n], candidates[n][j], candidates[n][i], "ba"))
        answers = self._ask_all(questions)
        logits = np.zeros((len(prompts), k, k))
        for index, (n, i, j) in enumerate(pairs):
            p = np.clip(
                self.pair_preference(answers[2 * index], answers[2 * index + 1]), EPSILON, 1 - EPSILON
            )
            logits[n, i, j] = np.log(p / (1 - p))
            logits[n, j, i] = -logits[n, i, j]
        log.info("LLM judge so far: %s", self.usage())
        return Judgement(logits=logits, scores=scores_from_logits(logits))

    def usage(self) -> dict:
        """Requests sent and answered from the cache, tokens, verdict sources, flips, retries."""
        return {**self.counts, "retries": self.client.retried, "cache_torn_lines": self.cache.torn_lines}

    def identity(self) -> dict:
        return {
            "name": self.name,
            "base_url": self.base_url,
            "model": self.model,
            "template": self.template_source,
            "template_sha256": self.template_sha256,
            "api_key_env": self.api_key_env,
            **self.settings,
        }
