"""Teacher models for the `llm` generator: the serving model, a local one, or an HTTP endpoint.

Teams often have a larger model behind an OpenAI-compatible API (vLLM, llama.cpp
server, TGI, a hosted service). `OpenAICompatibleTeacher` posts to its
`/v1/chat/completions` with httpx, several requests at a time. Transient failures
(connection errors, timeouts, 429 and 5xx) are retried with exponential backoff; a
request that still fails yields None and is counted, so one bad reply never stops a
run. The API key is read from the environment variable the config names, never
from the config file.

Example:
    >>> teacher = OpenAICompatibleTeacher("http://127.0.0.1:8000/v1", model="qwen")    # doctest: +SKIP
    >>> teacher.generate([[{"role": "user", "content": "Hi"}]], max_new_tokens=16)  # doctest: +SKIP
    ['Hello!']
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import httpx

from framework.config import TeacherConfig

log = logging.getLogger(__name__)

_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


class TeacherConfigError(ValueError):
    """The teacher endpoint cannot be used as configured."""


class OpenAICompatibleTeacher:
    def __init__(self, base_url: str, *, model: str, api_key: str | None = None, timeout_s: float = 60.0,
                 retries: int = 3, backoff_s: float = 0.5, concurrency: int = 4, temperature: float = 0.0) -> None:
        url = base_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise TeacherConfigError(f"dataset.teacher.base_url: {base_url!r} is not an http(s) URL "
                                     "like http://127.0.0.1:8000/v1")
        self.endpoint = url + "/chat/completions" if url.endswith("/v1") else url + "/v1/chat/completions"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.concurrency, self.temperature = concurrency, temperature
        self.stats: Counter = Counter()
        self.last_error = ""
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: TeacherConfig) -> "OpenAICompatibleTeacher":
        api_key = None
        if cfg.api_key_env:
            api_key = os.environ.get(cfg.api_key_env)
            if not api_key:
                raise TeacherConfigError(f"dataset.teacher.api_key_env: environment variable {cfg.api_key_env} "
                                         "is not set; export the endpoint's API key under that name")
        return cls(cfg.base_url, model=cfg.api_model, api_key=api_key, timeout_s=cfg.timeout_s,
                   retries=cfg.http_retries, backoff_s=cfg.retry_backoff_s, concurrency=cfg.concurrency)

    def generate(self, conversations: Sequence[list[dict]], *, adapter: str | None = None,
                 max_new_tokens: int = 64) -> list[str | None]:
        """One reply per conversation, in order; None where the request failed after retries."""
        if adapter is not None:
            raise ValueError("an HTTP teacher has no adapters")
        with httpx.Client(timeout=self.timeout_s, headers=self.headers) as client:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                return list(pool.map(lambda c: self._complete(client, c, max_new_tokens), conversations))

    def _count(self, key: str, error: str = "") -> None:
        with self._lock:
            self.stats[key] += 1
            if error:
                self.last_error = error

    def _complete(self, client: httpx.Client, messages: list[dict], max_new_tokens: int) -> str | None:
        body = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens,
                "temperature": self.temperature}
        for attempt in range(self.retries + 1):
            self._count("requests")
            error, wait = self._attempt(client, body)
            if error is None:
                return wait  # type: ignore[return-value]  # the reply text
            if attempt < self.retries and wait is not None:
                self._count("retries")
                time.sleep(wait if isinstance(wait, float) and wait > 0 else self.backoff_s * 2 ** attempt)
                continue
            self._count("failed", error)
            log.warning("teacher request failed: %s", error)
            return None
        return None

    def _attempt(self, client: httpx.Client, body: dict) -> tuple[str | None, object]:
        """(None, reply) on success; (error, retry_after or 0.0) if retryable; (error, None) if not."""
        try:
            response = client.post(self.endpoint, json=body)
        except httpx.HTTPError as err:
            return f"{type(err).__name__}: {err}", 0.0
        if response.status_code != 200:
            error = f"HTTP {response.status_code} from {self.endpoint}: {response.text[:200]}"
            if response.status_code not in _RETRYABLE:
                return error, None
            return error, _retry_after(response)
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return f"malformed response body from {self.endpoint}: {response.text[:200]}", 0.0
        return None, content if isinstance(content, str) else ""


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(30.0, float(response.headers.get("retry-after", 0)))
    except ValueError:
        return 0.0


def build_teacher(cfg: TeacherConfig, *, serving: Callable[[], object], load_local: Callable[[str], object]):
    """The model `dataset.generator: llm` asks: an OpenAI-compatible endpoint (`base_url`), the serving
    generator (`model: generator`, the default), or another local model loaded by `load_local`."""
    if cfg.base_url:
        return OpenAICompatibleTeacher.from_config(cfg)
    return serving() if cfg.model == "generator" else load_local(cfg.model)
