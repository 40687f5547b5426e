"""`ragtune serve`: an OpenAI-compatible HTTP server over the router (FastAPI + uvicorn).

- `POST /v1/chat/completions`: OpenAI's request and response (`usage`, `stop`, `stream_options`),
  `stream: true` as server-sent events, ragtune's extras in the one field `ragtune` (serving/wire.py);
- `GET /v1/models`: the names `model` may take (a mode, `auto`, `ragtune` for the caller's
  configured default, or an A/B experiment's name);
- `POST /v1/feedback`: an outcome of an answer given under an experiment (`{"request_id": the
  answer's id, "name": "thumbs_up", "value": true}`); an id no experiment served is a 404;
- `GET /health`, and `GET /metrics` in Prometheus text format (serving/metrics.py).

Every `/v1/` call needs `Authorization: Bearer <token>`; the token's principal (serve/auth.py)
filters retrieval and picks adapters, and nothing in a request can widen it. Every error is
JSON in OpenAI's shape with a 4xx status that says what is wrong (401 unknown token, 400 bad
request, 403 an adapter outside the caller's audience, 404 unknown model or an adapter not
served, 413 oversized body); an unexpected failure is a 500 naming the request id, never
a stack trace (that goes to the server log).

Every `/v1/` request and every refusal gets one log line (serving/server_log.py: request id, user,
model, mode, adapter, time; status and reason), plain or JSON lines; HTTP sources carry no server
paths (serving/citations.py).

The server holds no state of its own beyond the model in memory: answers go through the
router to the one generation worker, so concurrent requests are batched per adapter; the
exposures and outcomes of experiments go to their store (SQLite in WAL mode or a database URL),
which several server processes share.

A streamed answer is sent once it is generated (a micro-batch generates whole answers),
as one event per word, then a last event with the finish reason and the extras.

Example:
    >>> app = create_app(project.router, project.config.serve,                        # doctest: +SKIP
    ...                  tokens=TokenTable.from_config(project.config.serve.tokens, environ=os.environ))
    >>> run(app, host="127.0.0.1", port=8100)                                           # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from framework.adapters.registry import AdapterError
from framework.config import ServeConfig
from framework.experiments.live import Experiments
from framework.experiments.store import UnknownRequestError
from framework.records import Answer, Principal
from framework.serving.ab import ExperimentRouter
from framework.serving.auth import TokenTable
from framework.serving.metrics import ServerMetrics
from framework.serving.remote import BackendError
from framework.serving.router import Router
from framework.serving.server_log import RequestLog
from framework.serving.wire import (ApiError, Catalog, Choice, completion, model_list, parse_feedback, parse_request,
                                    stream_events)
from framework.serving.wire import cut_at_stop

log = logging.getLogger(__name__)
ROUTES = "POST /v1/chat/completions, GET /v1/models, POST /v1/feedback, GET /health, GET /metrics"


def _error(err: ApiError, request_id: str | None = None) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if err.status == 401 else {}
    if request_id:
        headers["x-request-id"] = request_id
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    too_big = ApiError(413, f"the request body is over {limit} bytes (serve.max_body_bytes)",
                       code="request_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_big
    return bytes(body)


def _answer(ab: ExperimentRouter, question: str, principal: Principal, choice: Choice, budget: int | None,
            request_id: str, end_user: str | None, stop: tuple[str, ...] = ()) -> Answer:
    """The router's answer (under the caller's experiment arm), with the refusals a caller can act on turned
    into API errors."""
    try:
        return ab.answer([question], principal=principal, mode=choice.mode, experiment=choice.experiment,
                         end_user=end_user, max_new_tokens=budget, request_ids=[request_id], stop=stop)[0]
    except PermissionError as err:
        raise ApiError(403, str(err), kind="permission_error", code="adapter_audience", param="model") from None
    except AdapterError as err:
        raise ApiError(404, str(err), code="model_not_available", param="model") from None
    except BackendError as err:
        raise ApiError(502, str(err), kind="server_error", code="generator_unavailable") from None
    except ValueError as err:
        raise ApiError(400, str(err)) from None


def create_app(router: Router, cfg: ServeConfig, *, tokens: TokenTable, catalog: Catalog | None = None,
               experiments: Experiments | None = None) -> FastAPI:
    """The ASGI app; `run` serves it, tests may serve it on any free port. `experiments` (the project's)
    adds their names to the catalog and logs exposures; without it every answer routes as configured."""
    app = FastAPI(title="ragtune", docs_url=None, redoc_url=None, openapi_url=None)
    catalog = catalog or Catalog(experiments=experiments.names if experiments else ())
    ab = ExperimentRouter(router, experiments)
    metrics = ServerMetrics(router.worker)
    app.state.metrics = metrics
    requests = RequestLog()

    def refused(request: Request, err: ApiError, request_id: str | None = None, **more) -> JSONResponse:
        """The error response, logged with the caller's user where the token was known (never the token)."""
        request_id = request_id or getattr(request.state, "request_id", None) or f"req-{uuid.uuid4().hex}"
        requests.refused(request_id, err.status, err.message, route=request.url.path, code=err.code,
                         user=getattr(request.state, "user", None), **more)
        return _error(err, request_id)

    def principal(request: Request) -> Principal:
        found = tokens.principal(request.headers.get("authorization"))
        if found is None:
            raise ApiError(401, "missing or unknown bearer token; send `Authorization: Bearer <token>` with a token "
                                "from serve.tokens", code="invalid_api_key")
        request.state.user = found.user  # for the request log
        return found

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return refused(request, err)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        message = (f"no route {request.method} {request.url.path}; ragtune serves {ROUTES}"
                   if err.status_code in (404, 405) else str(err.detail))
        return refused(request, ApiError(err.status_code, message, code="unknown_route"
                                         if err.status_code in (404, 405) else None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return refused(request, ApiError(500, "internal error; the server log has the details", kind="server_error"))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "queue_depth": router.worker.depth()}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        start = time.perf_counter()
        caller = principal(request)
        requests.served(f"req-{uuid.uuid4().hex}", route="/v1/models", user=caller.user,
                        seconds=time.perf_counter() - start)
        return model_list(catalog)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        request_id, start = f"chatcmpl-{uuid.uuid4().hex}", time.perf_counter()
        req, request.state.request_id = None, request_id
        try:
            caller = principal(request)
            req = parse_request(await _read_body(request, cfg.max_body_bytes), max_messages=cfg.max_messages,
                                max_chars=cfg.max_chars)
            choice = catalog.choose(req.model)
            answer = await run_in_threadpool(_answer, ab, req.question(), caller, choice, req.budget(), request_id,
                                             req.end_user(), req.stops())
            answer = cut_at_stop(answer, req.stops())
        except ApiError as err:
            metrics.observe(None, err.status)
            return refused(request, err, request_id, model=req.model if req else None,
                           seconds=time.perf_counter() - start)
        seconds = time.perf_counter() - start
        metrics.observe(answer.mode, 200, seconds)
        requests.answered(request_id, user=caller.user, model=req.model, answer=answer, seconds=seconds,
                          stream=req.stream)
        headers = {"x-request-id": request_id}
        if req.stream:
            return StreamingResponse(iter(stream_events(answer, model=req.model, request_id=request_id,
                                                        include_usage=req.include_usage())),
                                     media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})
        return JSONResponse(completion(answer, model=req.model, request_id=request_id), headers=headers)

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> JSONResponse:
        start = time.perf_counter()
        caller = principal(request)
        body = parse_feedback(await _read_body(request, cfg.max_body_bytes))
        if experiments is None:
            raise ApiError(404, f"request {body.request_id!r} was not served under an experiment: this server runs "
                                "none (`experiments:` in the config)", code="unknown_request", param="request_id")
        try:
            await run_in_threadpool(experiments.record_outcome, body.request_id, body.name, body.value)
        except UnknownRequestError as err:
            raise ApiError(404, str(err), code="unknown_request", param="request_id") from None
        except ValueError as err:
            raise ApiError(400, str(err)) from None
        requests.served(f"req-{uuid.uuid4().hex}", route="/v1/feedback", user=caller.user,
                        seconds=time.perf_counter() - start, answer_id=body.request_id, name=body.name)
        return JSONResponse({"object": "feedback", "request_id": body.request_id, "name": body.name,
                             "value": float(body.value)})

    return app


def run(app: FastAPI, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM finish the requests in flight first). Logging is configured by
    the caller (serving/server_log.py, `configure`): uvicorn's own lines go through it, and its access log is off
    since every `/v1/` request has its line in `ragtune.requests`."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=None, access_log=False,
                                  server_header=False)).run()
