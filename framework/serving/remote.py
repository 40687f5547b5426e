"""A generation backend on any OpenAI-compatible endpoint (vLLM, llama.cpp server, TGI).

When one machine's model is not enough, the answering moves to an endpoint and ragtune
keeps the rest: retrieval, ACLs, routing, audience checks and logs. vLLM serves one base
model with many LoRA adapters (`--enable-lora --lora-modules name=path`); config maps each
ragtune adapter version to the name the endpoint serves it under (`generator.adapter_models`),
so `finetuned` and `combined` answers use the same adapters as local serving. An adapter
version missing from the map is refused with what to add, never answered by the base model.

The chat template is applied by the endpoint, so the prompt an Answer records is the
conversation sent, one `role: content` line per message. Conversations of one batch are
sent concurrently (the endpoint batches them); decoding is greedy (`temperature: 0`), with the
endpoint's own repetition settings: `generator.no_repeat_ngram_size` and `repetition_penalty`
are local decoding controls and are not sent, so they can never change a number here. A
leading "The documents state that" is dropped as in local answers (decoding.strip_preamble).
The API key is read from the environment variable `generator.api_key_env` names.

Example:
    >>> gen = OpenAIGenerator("http://127.0.0.1:8000/v1", model="base", adapter_models={"t-v0001": "t1"})  # doctest: +SKIP
    >>> gen.complete([[{"role": "user", "content": "Hi"}]], adapter="t-v0001")                           # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

import httpx

from framework.adapters.registry import AdapterError
from framework.config import GeneratorConfig
from framework.serving.decoding import strip_preamble
from framework.serving.generator import Generation

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class BackendError(RuntimeError):
    """The generation endpoint failed or is misconfigured."""


class OpenAIGenerator:
    def __init__(self, base_url: str, *, model: str, adapter_models: Mapping[str, str] | None = None,
                 api_key: str | None = None, timeout_s: float = 60.0, retries: int = 2,
                 concurrency: int = 8) -> None:
        url = base_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise BackendError(f"generator.base_url: {base_url!r} is not an http(s) URL like http://127.0.0.1:8000/v1")
        self.endpoint = url + "/chat/completions" if url.endswith("/v1") else url + "/v1/chat/completions"
        self.model, self.adapter_models = model, dict(adapter_models or {})
        self.retries, self.concurrency = retries, concurrency
        self._client = httpx.Client(timeout=timeout_s,
                                    headers={"Authorization": f"Bearer {api_key}"} if api_key else {})

    @classmethod
    def from_config(cls, cfg: GeneratorConfig, environ: Mapping[str, str] = os.environ) -> "OpenAIGenerator":
        api_key = None
        if cfg.api_key_env:
            api_key = environ.get(cfg.api_key_env)
            if not api_key:
                raise BackendError(f"generator.api_key_env: environment variable {cfg.api_key_env} is not set; "
                                   "export the endpoint's API key under that name")
        models = {spec.replace("@", "-"): name for spec, name in cfg.adapter_models.items()}  # t@v0001 -> t-v0001
        return cls(cfg.base_url, model=cfg.api_model, adapter_models=models, api_key=api_key, timeout_s=cfg.timeout_s,
                   retries=cfg.http_retries, concurrency=cfg.concurrency)

    def render(self, conversation: list[dict]) -> str:
        return "\n".join(f"{m['role']}: {m['content']}" for m in conversation)

    def has_adapter(self, key: str) -> bool:
        return key in self.adapter_models

    def load_adapter(self, key: str, path: Path) -> None:
        """The endpoint loads adapters itself; here an unmapped version is an error that says what to map."""
        if key not in self.adapter_models:
            spec = "@".join(key.rsplit("-", 1))
            raise AdapterError(f"adapter {spec} has no model on the generation endpoint; export it (`ragtune adapters "
                               f"export {spec.split('@')[0]} --version {spec.split('@')[1]}`), serve it there, and "
                               f"add `{spec}: <its model name>` to generator.adapter_models")

    def generate(self, conversations: Sequence[list[dict]], *, adapter: str | None = None,
                 max_new_tokens: int = 64) -> list[str]:
        """The texts only (what a synthetic-data teacher needs)."""
        return [g.text for g in self.complete(conversations, adapter=adapter, max_new_tokens=max_new_tokens)]

    def complete(self, conversations: Sequence[list[dict]], *, adapter: str | None = None,
                 max_new_tokens: int | Sequence[int] = 64,
                 stop: Sequence[Sequence[str]] | None = None) -> list[Generation]:
        if adapter is not None:
            self.load_adapter(adapter, Path())
        model = self.adapter_models[adapter] if adapter else self.model
        budgets = [max_new_tokens] * len(conversations) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        stops = [list(s) for s in stop] if stop else [[]] * len(conversations)
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(conversations)))) as pool:
            return list(pool.map(lambda cbs: self._one(cbs[0], model, cbs[1], cbs[2]),
                                 zip(conversations, budgets, stops)))

    def _one(self, conversation: list[dict], model: str, max_new_tokens: int, stop: Sequence[str] = ()) -> Generation:
        payload = {"model": model, "messages": conversation, "max_tokens": max_new_tokens, "temperature": 0,
                   **({"stop": list(stop)} if stop else {})}
        for attempt in range(self.retries + 1):
            try:
                reply = self._client.post(self.endpoint, json=payload)
            except httpx.HTTPError as err:
                problem = f"{type(err).__name__}: {err}"
            else:
                if reply.status_code == 200:
                    return self._parse(reply, model)
                problem = f"HTTP {reply.status_code}: {reply.text[:300]}"
                if reply.status_code not in RETRYABLE:
                    break
            if attempt < self.retries:
                time.sleep(0.2 * 2 ** attempt)
        raise BackendError(f"generation endpoint {self.endpoint} (model {model!r}) failed: {problem}")

    def _parse(self, reply: httpx.Response, model: str) -> Generation:
        try:
            body = reply.json()
            choice = body["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise BackendError(f"generation endpoint {self.endpoint} (model {model!r}) sent an answer without "
                               f"choices[0].message.content ({err!r}): {reply.text[:200]}") from None
        usage = body.get("usage") or {}
        return Generation(text=strip_preamble(text.strip()), tokens=int(usage.get("completion_tokens") or 0),
                          truncated=choice.get("finish_reason") == "length",
                          prompt_tokens=int(usage.get("prompt_tokens") or 0))
