"""The LLM judge's HTTP side: an OpenAI-compatible chat-completions client that retries like a client
of a paid API, and a request/response cache kept as a JSON Lines file.

Retries: a 429, a 5xx, a timeout or a failed connection is tried again after
``backoff · 2^attempt`` seconds (capped at ``max_backoff``; a server's ``Retry-After`` wins when it
asks for longer, up to the same cap), ``retries`` times; then :class:`EndpointError` names the URL
and the model. Any other 4xx fails at once (retrying a bad request cannot help). The API key only
travels in the Authorization header: it is never logged, cached or put in an error message.

Cache: one JSON object per completed request, appended with a single ``write`` on a file opened
with O_APPEND and fsync'ed, so a killed job leaves at most one torn last line (skipped and counted
on load) and a rerun sends only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


class EndpointError(RuntimeError):
    """The endpoint failed for good (retries spent, or a request it refuses)."""


def request_key(parts: list) -> str:
    """sha256 of the JSON of ``parts`` (model, template hash, generation settings, texts, order)."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()


class ResponseCache:
    """The completed requests of a job, keyed by :func:`request_key`; ``path`` None keeps nothing."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self.records: dict[str, dict] = {}
        self.torn_lines = 0
        self._lock = threading.Lock()
        self._torn_tail = False  # the file ends inside a line: the next record starts a new one
        if self.path is not None and self.path.is_file():
            text = self.path.read_text(encoding="utf-8")
            self._torn_tail = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                    self.records[record["key"]] = record
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.torn_lines += 1  # a job killed mid-write: the request is simply sent again
            log.info("cache %s: %d responses, %d torn lines", self.path, len(self.records), self.torn_lines)

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, record: dict) -> None:
        """Append ``record`` (with its ``key``) as one line, in one write, fsync'ed."""
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            self.records[record["key"]] = record
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"\n" + line if self._torn_tail else line)
                self._torn_tail = False
                os.fsync(fd)
            finally:
                os.close(fd)


class ChatClient:
    """POSTs chat-completions requests to ``base_url``/chat/completions with retries (module docstring)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None,
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float = 60.0,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.retried = 0  # failed attempts that were tried again
        self._lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(headers=headers, timeout=timeout)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based): backoff · 2^attempt, or the server's
        Retry-After when longer, both capped at max_backoff."""
        wait = self.backoff * 2**attempt
        try:
            wait = max(wait, float(retry_after)) if retry_after else wait
        except ValueError:
            pass  # an HTTP date: keep our own schedule
        return min(wait, self.max_backoff)

    def complete(self, body: dict) -> dict:
        """The endpoint's JSON answer to ``body`` (``model`` is added)."""
        body = {**body, "model": self.model}
        last = ""
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                response = self._http.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if response.status_code < 400:
                    return self.parse(response)
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 429 and response.status_code < 500:
                    raise EndpointError(
                        f"LLM judge endpoint {self.url} (model {self.model!r}) refused: {last}"
                    )
                retry_after = response.headers.get("retry-after")
            if attempt < self.retries:
                wait = self.delay(attempt, retry_after)
                log.warning(
                    "%s (model %r): %s; retry %d in %.1f s", self.url, self.model, last, attempt + 1, wait
                )
                with self._lock:
                    self.retried += 1
                time.sleep(wait)
        raise EndpointError(
            f"LLM judge endpoint {self.url} (model {self.model!r}) failed after {self.retries + 1} "
            f"attempts: {last}"
        )

    def parse(self, response: httpx.Response) -> dict:
        """The answer's JSON, or an EndpointError when it is not a chat completion with a choice."""
        try:
            answer = response.json()
            answer["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise EndpointError(
                f"LLM judge endpoint {self.url} (model {self.model!r}) sent no chat completion: "
                f"{response.text[:300]!r}"
            ) from None
        return answer

    def close(self) -> None:
        self._http.close()
