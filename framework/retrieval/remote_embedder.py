"""Embeddings from a server that speaks OpenAI's `/v1/embeddings` (`index.embedder: openai`).

A corpus of a few hundred thousand pages is embedded on a GPU by an embedding server
(text-embeddings-inference, vLLM, Infinity, or OpenAI itself), not in the ragtune process.
Texts go in batches bounded by an estimate of their tokens (`max_batch_tokens`, about 4
characters a token: the server's tokenizer is not known here) and by count
(`max_batch_texts`); up to `concurrency` batches are in flight at once. A 429 or 5xx answer,
or a dropped connection, is retried with exponential backoff (the server's Retry-After
when it sends one); a 4xx is not, and its message is shown. Vectors are normalized, so
any server's vectors work with the cosine index. Chunks are sized with the served model's
tokenizer when `tokenizer` names a local copy of it (`bundled` or a folder), else by words.

Example:
    >>> emb = OpenAIEmbedder(base_url="http://127.0.0.1:7997/v1", model="bge-small-en-v1.5")  # doctest: +SKIP
    >>> emb.embed(["hello world"]).shape                                                        # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORDS_ONLY = re.compile(r"\w+", re.UNICODE)
RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


class EmbeddingServerError(RuntimeError):
    """The embedding server refused or kept failing a request; the message says which and what it answered."""


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: the larger of characters / 4 and words and punctuation marks."""
    return max(1, math.ceil(len(text) / 4), len(_WORD.findall(text)))


def token_batches(texts: list[str], *, max_tokens: int, max_texts: int) -> list[list[int]]:
    """Indices of `texts` in order, grouped so each group stays under both limits (a text over `max_tokens`
    goes alone)."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, text in enumerate(texts):
        n = estimate_tokens(text)
        if current and (used + n > max_tokens or len(current) >= max_texts):
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        batches.append(current)
    return batches


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint as an `Embedder` (framework.ingest.protocols)."""

    def __init__(self, *, base_url: str, model: str, api_key_env: str | None = None, max_batch_tokens: int = 8192,
                 max_batch_texts: int = 128, max_tokens: int = 256, concurrency: int = 2, timeout_s: float = 60.0,
                 retries: int = 5, backoff_s: float = 0.5, dimensions: int | None = None,
                 tokenizer: str | None = None) -> None:
        key = None
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise EmbeddingServerError(f"index.endpoint.api_key_env: the environment variable {api_key_env} is "
                                           "not set; export it or remove the key for a server without one")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self.max_tokens = max_tokens
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_texts = max_batch_texts
        self.concurrency = concurrency
        self.retries = retries
        self.backoff_s = backoff_s
        self.dimensions = dimensions
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers,
                                    limits=httpx.Limits(max_connections=max(2, concurrency)))
        self.requests = 0  # sent, retries included (for tests and throughput reports)
        self._tokenizer = _load_tokenizer(tokenizer) if tokenizer else None

    def tokenize(self, text: str) -> list:
        """Chunking's token count: the served model's own tokenizer when `tokenizer` names a local copy (then
        chunks are the ones the in-process model would get), else words."""
        if self._tokenizer is not None:
            return self._tokenizer.encode(text, add_special_tokens=False)
        return _WORDS_ONLY.findall(text)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions or 0), dtype=np.float32)
        batches = token_batches(list(texts), max_tokens=self.max_batch_tokens, max_texts=self.max_batch_texts)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = list(pool.map(lambda idx: self._post([texts[i] for i in idx]), batches))
        out = np.concatenate(results, axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms == 0, 1.0, norms)).astype(np.float32)

    def _post(self, batch: list[str]) -> np.ndarray:
        body: dict = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self.dimensions:
            body["dimensions"] = self.dimensions
        url = f"{self.base_url}/embeddings"
        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                resp = self._client.post(url, json=body)
            except httpx.TransportError as exc:
                problem, wait = f"{type(exc).__name__}: {exc}", None
            else:
                if resp.status_code == 200:
                    return self._vectors(resp.json(), len(batch))
                if resp.status_code not in RETRYABLE:
                    raise EmbeddingServerError(f"embedding server {url} answered {resp.status_code} for model "
                                               f"{self.model!r}: {resp.text[:300]}")
                problem, wait = f"HTTP {resp.status_code}", _retry_after(resp)
            if attempt == self.retries:
                raise EmbeddingServerError(f"embedding server {url} failed {self.retries + 1} times ({problem}); "
                                           "check that it is up, or raise index.endpoint.retries")
            delay = wait if wait is not None else self.backoff_s * 2**attempt
            log.warning("embedding request failed (%s); retrying in %.1f s", problem, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _vectors(self, payload: dict, n: int) -> np.ndarray:
        data = sorted(payload.get("data", []), key=lambda d: d.get("index", 0))
        if len(data) != n:
            raise EmbeddingServerError(f"embedding server returned {len(data)} vectors for {n} texts")
        out = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        if self.dimensions is None:
            self.dimensions = out.shape[1]
        elif out.shape[1] != self.dimensions:
            raise EmbeddingServerError(f"embedding server returned {out.shape[1]}-dimensional vectors, expected "
                                       f"{self.dimensions}; the model behind {self.model!r} changed")
        return out

    def close(self) -> None:
        self._client.close()


def _load_tokenizer(spec: str):
    """A local tokenizer for chunk counts: `bundled` (the bundled embedder's) or a model folder."""
    from transformers import AutoTokenizer

    from framework.runtime.models import resolve_embedder

    tok = AutoTokenizer.from_pretrained(str(resolve_embedder(spec, key="index.endpoint.tokenizer")),
                                        local_files_only=True)
    tok.model_max_length = 10**9  # counts whole documents; the server truncates what it embeds
    return tok


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return min(60.0, float(resp.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
