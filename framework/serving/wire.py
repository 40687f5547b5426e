"""The OpenAI chat-completions wire format, as `ragtune serve` speaks it.

Requests are validated strictly (wrong types are errors, not coerced; arrays and objects nest at
most `MAX_DEPTH` levels, checked before any parser recurses into them) and every problem
becomes an `ApiError` in OpenAI's error shape, so the official client raises its usual
exceptions with a message that says what to fix. Responses are OpenAI's, plus one extra
top-level field, `ragtune`, holding what an auditor needs: mode, reason, sources (document id,
path in its source, section, page, score; a uri for http(s) documents only: serving/citations.py),
adapter version, request id, generated tokens. The official client keeps unknown fields (`completion.ragtune`, `chunk.ragtune`).

The question is the last message, which must be the user's; earlier turns and system
messages are accepted but not shown to the model: ragtune's prompts (framework/prompts.py)
answer one question from the documents, the same way in training and serving.

Decoding is greedy: `temperature`, `top_p`, `seed` and the penalties are accepted (finite and in
OpenAI's ranges) and ignored, so the same request gets the same answer whatever the seed; `n` must
be 1 (n greedy copies would be identical). `max_tokens` (or `max_completion_tokens`) can lower
`generator.max_new_tokens`, never raise it. `stop` (a string or up to 4) cuts the answer before the
first stop sequence, streamed or not. `response_format` may only be `{"type": "text"}`: nothing
constrains a small model to JSON, so `json_object` and `json_schema` are refused rather than
answered with prose. `user` (or `safety_identifier`) names the end user a front end answers for; it
is the unit of A/B experiments with `unit: end_user` and never changes who the caller is: the bearer
token decides what is read. Every response carries OpenAI's `usage`; a stream sends it in a last
chunk with no choices when `stream_options.include_usage` is true.

Example:
    >>> req = parse_request(b'{"model": "rag", "messages": [{"role": "user", "content": "Hi?"}]}',
    ...                     max_messages=8, max_chars=100)
    >>> req.question(), req.stream
    ('Hi?', False)
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from framework.records import MODES, Answer
from framework.serving.citations import evidence_view, source_view


class ApiError(Exception):
    """An error response: HTTP status and OpenAI's `{"error": {message, type, param, code}}`."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(_Strict):
    include_usage: bool | None = None  # a last chunk with `usage` and no choices
    include_obfuscation: bool | None = None  # accepted; ragtune pads no chunk (the deployment's TLS protects them)


MAX_STOP = 4  # OpenAI's limit on stop sequences


class ChatRequest(_Strict):
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1)  # more than 1 is refused in parse_request, with why
    stop: str | list[str] | None = None
    response_format: dict | None = None  # only {"type": "text"}; checked in parse_request
    user: str | None = None  # the end user (A/B unit with unit: end_user); never who the caller is
    safety_identifier: str | None = Field(default=None, max_length=128)  # OpenAI's successor to `user`
    # accepted and ignored (decoding is greedy; see the module docstring), checked as OpenAI documents them
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    metadata: dict | None = None
    store: bool | None = None

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def end_user(self) -> str | None:
        return self.user if self.user is not None else self.safety_identifier

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

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
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"the request body is not valid JSON ({err}); send a JSON object") from None
    if (where := _lone_surrogate(parsed)) is not None:
        path, code = where
        raise ApiError(400, f"{'.'.join(map(str, path)) or 'body'}: the text holds a lone UTF-16 surrogate escape "
                       f"(\\u{code:04x}), half of a pair, which is no character; write a character outside the "
                       "Basic Multilingual Plane as both halves (\\ud83d\\ude00 for U+1F600) or as UTF-8",
                       param=str(path[0]) if path else None)
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: "
                    f"{'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}" for e in err.errors()]
        first = err.errors()[0]["loc"]
        raise ApiError(400, "invalid request: " + "; ".join(problems),
                       param=str(first[0]) if first else None) from None


def _lone_surrogate(value: Any, path: tuple = ()) -> tuple[tuple, int] | None:
    """The path to the first string (or key) holding a surrogate code point, and that code point; JSON's
    `\\uXXXX` escapes can spell half a pair, which Python's parser keeps but no text can hold."""
    if isinstance(value, str):
        bad = next((ord(c) for c in value if 0xD800 <= ord(c) <= 0xDFFF), None)
        return None if bad is None else (path, bad)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if (found := _lone_surrogate(key, path) if isinstance(key, str) else None) or \
                (found := _lone_surrogate(item, (*path, key))):
            return found
    return None


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
    _check_openai_options(req)
    return req


def _check_openai_options(req: ChatRequest) -> None:
    """The options OpenAI defines that ragtune cannot honour, refused with why (never silently ignored)."""
    if req.n not in (None, 1):
        raise ApiError(400, f"n: {req.n} choices asked; ragtune returns 1 (decoding is greedy, so more would be "
                       "copies of the same answer); send n=1 or leave it out", param="n")
    stops = req.stops()
    if len(stops) > MAX_STOP:
        raise ApiError(400, f"stop: {len(stops)} sequences; at most {MAX_STOP}, as OpenAI allows", param="stop")
    if not all(stops):
        raise ApiError(400, "stop: an empty stop sequence would end every answer before it starts; send non-empty "
                       "strings", param="stop")
    kind = (req.response_format or {}).get("type")
    if req.response_format is not None and kind != "text":
        raise ApiError(400, f"response_format: type {kind!r} is not supported; ragtune answers in text from the "
                       "documents and nothing constrains its model to JSON, so JSON output cannot be promised. Send "
                       '{"type": "text"} or leave response_format out', param="response_format")
    if req.response_format is not None and len(req.response_format) > 1:
        raise ApiError(400, f"response_format: {sorted(set(req.response_format) - {'type'})} unknown for type text; "
                       'send {"type": "text"}', param="response_format")
    if req.stream_options is not None and not req.stream:
        raise ApiError(400, "stream_options: only allowed when stream is true", param="stream_options")
    if None not in (req.user, req.safety_identifier) and req.user != req.safety_identifier:
        raise ApiError(400, "user and safety_identifier name different end users; send one of them",
                       param="safety_identifier")


def cut_at_stop(answer: Answer, stops: tuple[str, ...]) -> Answer:
    """The answer before the first of the stop sequences it contains (finish reason `stop`), as OpenAI
    returns it: the stop sequence itself is not included. Unchanged when it contains none. (Generation
    already ended at the sequence: the server hands `stop` to the worker, serving/decoding.py `StopSequences`.)"""
    at = min((i for s in stops if (i := answer.text.find(s)) >= 0), default=None)
    return answer if at is None else dataclasses.replace(answer, text=answer.text[:at], truncated=False)


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
            "sources": [source_view(s) for s in answer.sources],  # no server paths (serving/citations.py)
            "truncated": answer.truncated, "device": answer.device, "precision": answer.precision,
            "evidence": [evidence_view(e) for e in answer.evidence]}


def _finish(answer: Answer) -> str:
    return "length" if answer.truncated else "stop"


def usage(answer: Answer) -> dict:
    """OpenAI's `usage`: the tokens of prompt the model read and the tokens it generated (both 0 for an answer
    made without the model: an abstention, or one quoted from the documents with answer_style: extractive)."""
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.generated_tokens,
            "total_tokens": answer.prompt_tokens + answer.generated_tokens}


def completion(answer: Answer, *, model: str, request_id: str) -> dict:
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": _finish(answer), "logprobs": None}],
            "usage": usage(answer), "ragtune": extras(answer, request_id)}


def stream_events(answer: Answer, *, model: str, request_id: str, include_usage: bool = False) -> list[bytes]:
    """The answer as server-sent events: the role, the text word by word, the finish with the extras, then (with
    `include_usage`) a chunk with no choices and the usage, as OpenAI's `stream_options.include_usage` asks
    (the other chunks then carry `"usage": null`), and [DONE]."""
    created = int(time.time())
    null_usage = {"usage": None} if include_usage else {}

    def chunk(choices: list[dict], **more: Any) -> bytes:
        body = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices, **more}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()

    def delta(content: dict, finish: str | None = None, **more: Any) -> bytes:
        return chunk([{"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}], **null_usage, **more)

    words = re.findall(r"\s*\S+|\s+$", answer.text)  # every character, so the deltas join to the text
    last = [chunk([], usage=usage(answer))] if include_usage else []
    return [delta({"role": "assistant", "content": ""}), *(delta({"content": w}) for w in words),
            delta({}, _finish(answer), ragtune=extras(answer, request_id)), *last, b"data: [DONE]\n\n"]


def model_list(catalog: Catalog) -> dict:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "ragtune"}
                                       for name in catalog.names()]}
