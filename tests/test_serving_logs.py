"""`ragtune serve` logs one line per request and per refusal (user, model, mode, adapter, time; status and
reason, never the token), as plain text or JSON lines, and a startup line saying what it serves."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest
import yaml
from asgi_server import serving

from framework.config import ServeConfig, TokenConfig
from framework.project import Project, load_config_dict
from framework.serving.auth import TokenTable
from framework.serving.server import create_app
from framework.serving.server_log import PLAIN, REQUESTS

Q = "what is the meal limit ?"
TOKENS = {"sam": "sam-secret-token", "nobody": "nobody-secret-token"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(url: str, token: str, model: str = "finetuned"):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0).chat.completions.create(
        model=model, messages=[{"role": "user", "content": Q}])


def test_serve_logs_json_lines_for_requests_refusals_and_what_it_serves(two_audiences_config, tmp_path):
    port = _free_port()
    tokens = [{"user": u, "token_env": f"TOK_{u.upper()}", **({"groups": ["sales"]} if u == "sam" else {})}
              for u in TOKENS]
    (tmp_path / "ragtune.yaml").write_text(yaml.safe_dump({**two_audiences_config,
                                                           "serve": {"port": port, "tokens": tokens}}))
    env = {**os.environ, "PYTHONPATH": os.getcwd(), **{f"TOK_{u.upper()}": t for u, t in TOKENS.items()}}
    proc = subprocess.Popen([sys.executable, "-m", "framework", "serve", "-c", str(tmp_path / "ragtune.yaml"),
                             "--log-format", "json", "--log-level", "info"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"{url}/health").status_code == 200
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        answered = _ask(url, TOKENS["sam"])
        streamed = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {TOKENS['sam']}"},
                              json={"model": "rag", "stream": True, "messages": [{"role": "user", "content": Q}]})
        with pytest.raises(openai.AuthenticationError):
            _ask(url, "wrong-secret-token")
        assert httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer wrong-secret-token"}).status_code == 401
        with pytest.raises(openai.PermissionDeniedError):
            _ask(url, TOKENS["nobody"])  # the default adapter `hr` serves group hr only
        with pytest.raises(openai.NotFoundError):
            _ask(url, TOKENS["sam"], model="no-such-model")
    finally:
        proc.terminate()
        proc.wait(20)
    output = proc.stdout.read()
    assert "wrong-secret-token" not in output and not any(t in output for t in TOKENS.values())
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(lines) >= 7, output
    start = next(x for x in lines if x.get("event") == "startup")
    assert start["url"] == f"{url}/v1" and start["device"] == "cpu" and start["precision"] == "fp32"
    assert start["adapters"] == ["hr@v0001 (audience hr)", "t@v0001"] and start["experiments"] == []
    assert start["message"].startswith(f"ragtune serving on {url}/v1 for 2 token(s)")
    requests = [x for x in lines if x["logger"] == REQUESTS]
    ok = [x for x in requests if x["status"] == 200]
    assert [(x["request_id"], x["user"], x["model"], x["mode"], x["adapter"], x["stream"]) for x in ok] == [
        (answered.id, "sam", "finetuned", "finetuned", "t-v0001", False),
        (streamed.headers["x-request-id"], "sam", "rag", "rag", None, True)]
    assert all(x["latency_s"] > 0 and x["level"] == "info" and isinstance(x["generated_tokens"], int) for x in ok)
    refusals = [(x["status"], x["route"], x["user"], x["level"]) for x in requests if x["event"] == "refusal"]
    assert refusals == [(401, "/v1/chat/completions", None, "warning"), (401, "/v1/models", None, "warning"),
                        (403, "/v1/chat/completions", "nobody", "warning"),
                        (404, "/v1/chat/completions", "sam", "info")]
    reasons = [x["reason"] for x in requests if x["event"] == "refusal"]
    assert "bearer token" in reasons[0] and "hr" in reasons[2] and "no-such-model" in reasons[3]


def test_plain_request_lines_and_the_log_level(two_audiences_config):
    project = Project(load_config_dict(two_audiences_config), show_progress=False)
    token = TokenConfig(user="sam", groups=["sales"], token_env="TOK")
    app = create_app(project.router, ServeConfig(tokens=[token]), tokens=TokenTable.from_config([token],
                                                                                               environ={"TOK": "t"}))
    logger, text = logging.getLogger(REQUESTS), io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter(PLAIN))
    logger.addHandler(handler)
    try:
        with serving(app) as url:
            logger.setLevel(logging.INFO)
            reply = _ask(url, "t", model="rag")
            logger.setLevel(logging.WARNING)  # --log-level warning: refusals only
            _ask(url, "t", model="prompt_only")
            with pytest.raises(openai.AuthenticationError):
                _ask(url, "not-the-token")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        project.close()
    lines = text.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert f"INFO ragtune.requests: {reply.id} 200 user=sam model=rag mode=rag adapter=- arm=- tokens=" in lines[0]
    assert lines[0].endswith("s") and "not-the-token" not in text.getvalue()
    assert "WARNING ragtune.requests: chatcmpl-" in lines[1] and " 401 /v1/chat/completions user=- " in lines[1]
    assert "refused: missing or unknown bearer token" in lines[1]
