"""The OpenAI chat-completions wire format, as `ragtune serve` speaks it.

Requests are validated strictly (wrong types are errors, not coerced; arrays and objects nest at
most `MAX_DEPTH` levels, checked before any parser recurses into them) and every problem
becomes an `ApiError` in OpenAI's error shape, so the official client raises its usual
exceptions with a message that says what to fix. Responses are OpenAI's, plus one extra
top-level field, `ragtune`, holding what an auditor needs: mode, reason, sources (uri,
section, page, score), adapter version, request id, generated tokens. The official client keeps unknown
fields (`completion.ragtune`, `chunk.ragtune`).

The question is the last message, which must be the user's; earlier turns and system
messages are accepted but not shown to the model: ragtune's prompts (framework/prompts.py)
answer one question from the documents, the same way in training and serving.

Decoding is greedy: `temperature`, `top_p`, `seed` and the like are accepted and ignored;
`max_tokens` (or `max_completion_tokens`) can lower `generator.max_new_tokens`, never raise it.

Example:
    >>> req = parse_request(b'{"model": "rag", "messages": [{"role": "user", "content": "Hi?"}]}',
    ...                     max_messages=8, max_chars=100)
    >>> req.question(), req.stream
    ('Hi?', False)
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from framework.records import MODES, Answer


class ApiError(Exception):
    """An error response: HTTP status and OpenAI's `{"error": {message, type, param, code}}`."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(_Strict):
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=1)
    # accepted and ignored (decoding is greedy; see the module docstring)
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stream_options: dict | None = None
    metadata: dict | None = None
    store: bool | None = None

    def question(self) -> str:
        last = self.messages[-1]
        if last.role != "user" or not last.text().strip():
            raise ApiError(400, "the last message must be the user's question, with text", param="messages")
        return last.text()

    def budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class FeedbackRequest(_Strict):
    """`POST /v1/feedback`: an outcome of an answer given under an A/B experiment, named by the answer's `id`."""

    request_id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=64)
    value: bool | float


MAX_DEPTH = 32  # arrays and objects inside each other; a chat request needs 5
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def _depth(body: bytes) -> int:
    """How deeply arrays and objects nest, strings skipped: checked before parsing, since a parser's
    stack (Python's json, pydantic's) gives out on bodies of a few thousand `[`."""
    steps = (1 if c in b"[{" else -1 for c in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS))
    return max(accumulate(steps), default=0)


def _validated(model: type[BaseModel], body: bytes):
    """The body as `model`, or an ApiError naming every problem (too deeply nested, unreadable JSON, wrong types)."""
    if (depth := _depth(body)) > MAX_DEPTH:
        raise ApiError(400, f"the request body is nested too deeply: arrays and objects {depth} levels inside each "
                       f"other, at most {MAX_DEPTH}; send a JSON object as documented (a chat request nests about 5)")
    try:
        json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"the request body is not valid JSON ({err}); send a JSON object") from None
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: "
                    f"{'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}" for e in err.errors()]
        first = err.errors()[0]["loc"]
        raise ApiError(400, "invalid request: " + "; ".join(problems),
                       param=str(first[0]) if first else None) from None


def parse_feedback(body: bytes) -> FeedbackRequest:
    return _validated(FeedbackRequest, body)


def parse_request(body: bytes, *, max_messages: int, max_chars: int) -> ChatRequest:
    """The request, or an ApiError naming every problem (unreadable JSON, wrong types, limits)."""
    req = _validated(ChatRequest, body)
    if len(req.messages) > max_messages:
        raise ApiError(400, f"{len(req.messages)} messages; at most {max_messages} per request (serve.max_messages)",
                       param="messages")
    chars = sum(len(m.text()) for m in req.messages)
    if chars > max_chars:
        raise ApiError(400, f"the messages hold {chars} characters; at most {max_chars} per request (serve.max_chars)",
                       param="messages")
    req.question()
    return req


@dataclass(frozen=True)
class Catalog:
    """What `model` may name, and the explicit mode each asks the router for.

    - a mode (prompt_only, rag, finetuned, combined, auto): that mode, explicitly;
    - `ragtune`: no explicit mode, so the router applies the caller's group default, then
      `router.default_mode`.

    - an A/B experiment's name (`experiments`): the caller's arm of that experiment (serving/ab.py),
      or, while it does not run for the caller, the routing of `ragtune`; the precedence stays
      explicit > experiment arm > group default > config default (serving/router.py, `choose_mode`).
    """

    experiments: tuple[str, ...] = ()
    DEFAULT = "ragtune"

    def names(self) -> list[str]:
        return [self.DEFAULT, *MODES, *self.experiments]

    def choose(self, model: str) -> "Choice":
        if model in MODES:
            return Choice(mode=model)
        if model == self.DEFAULT:
            return Choice()
        if model in self.experiments:
            return Choice(experiment=model)
        raise ApiError(404, f"unknown model {model!r}; available: {', '.join(self.names())} (GET /v1/models)",
                       code="model_not_found", param="model")


@dataclass(frozen=True)
class Choice:
    mode: str | None = None
    experiment: str | None = None


def extras(answer: Answer, request_id: str) -> dict:
    """ragtune's one extra field: how and from what the answer was made, and the source sentences that support it."""
    return {"request_id": request_id, "mode": answer.mode, "reason": answer.reason, "adapter": answer.adapter,
            "confidence": answer.confidence, "abstained": answer.abstained, "latency_s": round(answer.latency_s, 4),
            "generated_tokens": answer.generated_tokens, "experiment": answer.experiment, "arm": answer.arm,
            "sources": [{"title": s.title, "uri": s.uri, "section": s.section, "page": s.page, "page_end": s.page_end,
                         "score": s.score, "chunk_id": s.chunk_id, "doc_id": s.doc_id} for s in answer.sources],
            "truncated": answer.truncated, "device": answer.device, "precision": answer.precision,
            "evidence": [{"text": e.text, "title": e.title, "uri": e.uri, "section": e.section, "page": e.page,
                          "score": e.score, "chunk_id": e.chunk_id, "doc_id": e.doc_id} for e in answer.evidence]}


def _finish(answer: Answer) -> str:
    return "length" if answer.truncated else "stop"


def completion(answer: Answer, *, model: str, request_id: str) -> dict:
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": _finish(answer), "logprobs": None}],
            "ragtune": extras(answer, request_id)}


def stream_events(answer: Answer, *, model: str, request_id: str) -> list[bytes]:
    """The answer as server-sent events: the role, the text word by word, the finish with the extras, [DONE]."""
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, **more: Any) -> bytes:
        body = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **more}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()

    words = re.findall(r"\s*\S+", answer.text)
    return [chunk({"role": "assistant", "content": ""}), *(chunk({"content": w}) for w in words),
            chunk({}, _finish(answer), ragtune=extras(answer, request_id)), b"data: [DONE]\n\n"]


def model_list(catalog: Catalog) -> dict:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "ragtune"}
                                       for name in catalog.names()]}
