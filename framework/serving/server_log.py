"""What `ragtune serve` logs: one line per request and per refusal, and the startup line.

An operator reads these to answer "who asked what, answered how, and who was turned away":
each chat completion logs its request id, the caller's user (from the bearer token, never the
token), the `model` asked for, the mode that answered, the adapter version, the experiment arm,
the generated tokens and the time; each refusal (401, 403, any 4xx, 5xx) logs its status, the
route and the reason the caller was given. Lines go to the logger `ragtune.requests` at INFO
(401 and 403 at WARNING, 5xx at ERROR), so `--log-level warning` keeps the refusals only.

`configure` sends every logger (ragtune's, uvicorn's) to stderr as plain text or as JSON lines
(`--log-format json`, one object per line with `time`, `level`, `logger`, `message` and, for
request lines, the fields above), ready for a log shipper.

Example:
    >>> configure(level="info", fmt="json")                                            # doctest: +SKIP
    >>> RequestLog().refused("req-1", 401, "missing or unknown bearer token", route="/v1/models")  # doctest: +SKIP
    {"time": "...", "level": "warning", "logger": "ragtune.requests", "message": "req-1 401 ...", "event": "refusal", ...}
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any, Literal

from framework.records import Answer

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["plain", "json"]
REQUESTS = "ragtune.requests"
STARTUP = "ragtune.serve"
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the record's `fields`,
    and the traceback of an exception as `error`."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        body.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def configure(level: LogLevel = "info", fmt: LogFormat = "plain", stream: IO[str] | None = None) -> logging.Handler:
    """Log every logger at `level` and above to `stream` (stderr) in `fmt`, instead of the plain stream handlers
    installed before (its own, `logging.basicConfig`'s)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(PLAIN))
    handler._ragtune = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    mine = [h for h in root.handlers if getattr(h, "_ragtune", False) or type(h) is logging.StreamHandler]
    root.handlers = [h for h in root.handlers if h not in mine] + [handler]  # replaces basicConfig's too
    root.setLevel(level.upper())
    logging.getLogger(STARTUP).setLevel(logging.INFO)  # the startup line shows at every level
    return handler


def _plain(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


class RequestLog:
    """The per-request lines of the HTTP server (logger `ragtune.requests`)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger(REQUESTS)

    def answered(self, request_id: str, *, user: str, model: str, answer: Answer, seconds: float,
                 stream: bool = False) -> None:
        """A chat completion answered (status 200)."""
        arm = f"{answer.experiment}/{answer.arm}" if answer.arm else None
        fields = {"event": "request", "request_id": request_id, "status": 200, "route": "/v1/chat/completions",
                  "user": user, "model": model, "mode": answer.mode, "adapter": answer.adapter,
                  "experiment": answer.experiment, "arm": answer.arm, "abstained": answer.abstained,
                  "generated_tokens": answer.generated_tokens, "stream": stream, "latency_s": round(seconds, 4)}
        self.log.info("%s 200 user=%s model=%s mode=%s adapter=%s arm=%s tokens=%d%s %.3fs", request_id, user, model,
                      answer.mode, _plain(answer.adapter), _plain(arm), answer.generated_tokens,
                      " stream" if stream else "", seconds, extra={"fields": fields})

    def served(self, request_id: str, *, route: str, user: str, seconds: float, **more: Any) -> None:
        """Another `/v1/` call answered (models, feedback)."""
        fields = {"event": "request", "request_id": request_id, "status": 200, "route": route, "user": user,
                  **more, "latency_s": round(seconds, 4)}
        extra = "".join(f" {k}={_plain(v)}" for k, v in more.items())
        self.log.info("%s 200 %s user=%s%s %.3fs", request_id, route, user, extra, seconds, extra={"fields": fields})

    def refused(self, request_id: str, status: int, reason: str, *, route: str, user: str | None = None,
                model: str | None = None, code: str | None = None, seconds: float | None = None) -> None:
        """A request answered with an error: the status, and the reason the caller was told (which never holds
        the token)."""
        level = logging.ERROR if status >= 500 else logging.WARNING if status in (401, 403) else logging.INFO
        fields = {"event": "refusal", "request_id": request_id, "status": status, "route": route, "user": user,
                  "model": model, "code": code, "reason": reason,
                  "latency_s": None if seconds is None else round(seconds, 4)}
        self.log.log(level, "%s %d %s user=%s model=%s refused: %s", request_id, status, route, _plain(user),
                     _plain(model), reason, extra={"fields": fields})


def served_adapters(router, experiments=None) -> list[str]:
    """Each adapter the config serves (`router.adapter`, `router.group_adapters`, experiment arms) as
    `name@version` with its audience, or why it serves nothing yet; read from the registry now."""
    cfg = router.cfg
    specs = [(cfg.adapter, cfg.adapter_version), *((s, None) for s in cfg.group_adapters.values()),
             *((a.adapter, None) for e in (experiments.configs if experiments else ()) for a in e.arms if a.adapter)]
    out = []
    for spec, pinned in dict.fromkeys(specs):
        ref = router.registry.served(spec, pinned, serve=router.serve)
        if ref is None:
            out.append(f"{spec} (not served: no trained or promoted version)")
        else:
            audience = ",".join(ref.manifest.audience)
            out.append(f"{ref.name}@{ref.version}" + (f" (audience {audience})" if audience else ""))
    return list(dict.fromkeys(out))


def startup(router, *, precision: str, where: str, tokens: int, experiments=None) -> None:
    """Log what this server serves, once, before it accepts requests: where, device, precision, adapters and
    experiments (logger `ragtune.serve`, shown at every --log-level)."""
    from framework.runtime.precision import describe

    gen = router.generator
    model = getattr(gen, "model", None)
    if hasattr(model, "parameters"):
        weights = next(model.parameters())
        device, dtype = str(weights.device), describe(precision, weights.dtype)
    else:  # generator.backend: openai
        device, dtype = f"remote endpoint {getattr(gen, 'endpoint', '?')}", "set by the endpoint"
    now = experiments.clock() if experiments else None
    running = [f"{e.name} ({'running' if e.running(now) else 'not running'})"
               for e in (experiments.configs if experiments else ())]
    adapters = served_adapters(router, experiments)
    pad = getattr(gen, "pad_multiple", None)
    # Measured on the bundled model (docs/guides/serving.md, "Equal answers"): fp32 answers equal one-by-one
    # answers; in bf16 the batch's size changes the matrix kernels' rounding, so padding alone cannot promise it.
    invariant = None if pad is None else not dtype.startswith("bf16")
    equal = ("answers equal one-by-one answers (fp32)" if invariant else
             "in bf16 a batched answer can differ from the same request answered alone "
             "(precision: fp32 makes them equal; docs/guides/serving.md)")
    fields = {"event": "startup", "url": f"{where}/v1", "tokens": tokens, "device": device, "precision": dtype,
              "adapters": adapters, "experiments": running, "batch_invariant": invariant}
    logging.getLogger(STARTUP).info(
        "ragtune serving on %s/v1 for %d token(s); models: GET %s/v1/models; device %s, precision %s, %s; "
        "adapters: %s; experiments: %s", where, tokens, where, device, dtype,
        equal if pad is not None else "batching by the endpoint", "; ".join(adapters) or "none",
        ", ".join(running) or "none", extra={"fields": fields})
