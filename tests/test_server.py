"""`ragtune serve` for real on 127.0.0.1, called with the official openai client: every mode, streaming,
auth, the 4xx cases, metrics, and a concurrent mixed-mode burst equal to direct answers."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import yaml
from asgi_server import serving

from framework.config import ServeConfig, TokenConfig
from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.serving.auth import ServeConfigError, TokenTable
from framework.serving.server import create_app

HANA, SAM, NOBODY = (Principal(user="hana", groups=("hr",)), Principal(user="sam", groups=("sales",)),
                     Principal(user="nobody"))
GHOST = Principal(user="casper", groups=("ghost",))  # their group's adapter was never trained
SECRETS = {"hana": "hana-secret", "sam": "sam-secret", "nobody": "nobody-secret", "casper": "casper-secret"}
ENV = {"TOK_HANA": SECRETS["hana"], "TOK_NOBODY": SECRETS["nobody"], "TOK_CASPER": SECRETS["casper"]}
TOKENS = [TokenConfig(user="hana", groups=["hr"], token_env="TOK_HANA"),
          TokenConfig(user="sam", groups=["sales"], token_sha256=hashlib.sha256(b"sam-secret").hexdigest()),
          TokenConfig(user="nobody", token_env="TOK_NOBODY"),
          TokenConfig(user="casper", groups=["ghost"], token_env="TOK_CASPER")]
Q = "what is the meal limit ?"


@pytest.fixture(scope="module")
def live(two_audiences_config):
    cfg = {**two_audiences_config, "router": {**two_audiences_config["router"],
                                              "group_adapters": {"hr": "hr", "sales": "t", "ghost": "ghost"}}}
    project = Project(load_config_dict(cfg), show_progress=False)
    serve = ServeConfig(tokens=TOKENS, max_messages=4, max_chars=400, max_body_bytes=2048)
    app = create_app(project.router, serve, tokens=TokenTable.from_config(TOKENS, environ=ENV))
    with serving(app) as url:
        yield project, url


def _client(url, who="hana"):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=SECRETS[who], max_retries=0)


def _ask(url, who, model, question=Q, **kw):
    return _client(url, who).chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                                     **kw)


def test_every_mode_answers_as_the_project_does_with_extras(live):
    project, url = live
    for model in ("prompt_only", "rag", "finetuned", "combined", "auto", "ragtune"):
        got = _ask(url, "hana", model)
        direct = project.ask_many([Q], mode=None if model == "ragtune" else model, principal=HANA)[0]
        extra = got.ragtune
        assert got.choices[0].message.content == direct.text and got.model == model
        assert got.choices[0].finish_reason in ("stop", "length") and got.id == extra["request_id"]
        assert (extra["mode"], extra["adapter"], extra["reason"]) == (direct.mode, direct.adapter, direct.reason)
        assert (extra["device"], extra["precision"]) == (direct.device, direct.precision) and direct.device
        assert [s["chunk_id"] for s in extra["sources"]] == [s.chunk_id for s in direct.sources]
        for s in extra["sources"]:
            assert {"uri", "path", "section", "page", "score", "title"} <= set(s) and s["uri"] is None  # no server path
    assert _ask(url, "hana", "finetuned").ragtune["adapter"] == "hr-v0001"
    assert _ask(url, "sam", "finetuned").ragtune["adapter"] == "t-v0001"
    assert _ask(url, "hana", "ragtune").ragtune["mode"] == "rag"  # no group default: router.default_mode
    cut = _ask(url, "hana", "prompt_only", max_tokens=1)
    assert cut.choices[0].finish_reason == "length" and cut.ragtune["generated_tokens"] == 1
    listed = [m.id for m in _client(url).models.list()]
    assert listed == ["ragtune", "prompt_only", "rag", "finetuned", "combined", "auto"]


def test_streaming_sends_the_same_answer_as_events(live):
    _, url = live
    whole = _ask(url, "sam", "combined")
    chunks = list(_ask(url, "sam", "combined", stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].ragtune["mode"] == "combined" and chunks[-1].ragtune["adapter"] == "t-v0001"
    assert len({c.id for c in chunks}) == 1


def test_the_token_decides_what_a_caller_reads_and_a_request_cannot_widen_it(live):
    _, url = live
    hr_doc = "hr:expenses.txt"
    assert hr_doc in {s["doc_id"] for s in _ask(url, "hana", "rag").ragtune["sources"]}
    assert hr_doc not in {s["doc_id"] for s in _ask(url, "sam", "rag", user="hana").ragtune["sources"]}
    with pytest.raises(openai.BadRequestError, match="groups: unknown field"):
        _ask(url, "sam", "rag", extra_body={"groups": ["hr"]})
    with pytest.raises(openai.AuthenticationError, match="unknown bearer token"):
        openai.OpenAI(base_url=f"{url}/v1", api_key="guess", max_retries=0).models.list()
    bare = httpx.post(f"{url}/v1/chat/completions", json={"model": "rag", "messages": [{"role": "user", "content": Q}]})
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
    assert bare.headers["www-authenticate"] == "Bearer"
    with pytest.raises(openai.PermissionDeniedError, match="not in that audience"):
        _ask(url, "nobody", "finetuned")  # the default adapter is hr's
    assert _ask(url, "nobody", "auto").ragtune["adapter"] is None
    with pytest.raises(openai.NotFoundError, match="no trained adapter named 'ghost'"):
        _ask(url, "casper", "combined")


def _post(url, body, **headers):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/v1/chat/completions", content=content,
                      headers={"authorization": "Bearer hana-secret", "content-type": "application/json", **headers})


@pytest.mark.parametrize("body, status, says", [
    ({"model": "gpt-4", "messages": [{"role": "user", "content": Q}]}, 404, "unknown model 'gpt-4'; available: ragtune"),
    ({"model": "rag", "messages": []}, 400, "messages: List should have at least 1 item"),
    ({"model": "rag"}, 400, "messages: Field required"),
    ({"model": "rag", "messages": "hi"}, 400, "messages: Input should be a valid array"),
    ({"model": 7, "messages": [{"role": "user", "content": Q}]}, 400, "model: Input should be a valid string"),
    ({"model": "rag", "stream": "yes", "messages": [{"role": "user", "content": Q}]}, 400, "stream: Input should be"),
    ({"model": "rag", "max_tokens": "5", "messages": [{"role": "user", "content": Q}]}, 400, "max_tokens: Input"),
    ({"model": "rag", "n": 2, "messages": [{"role": "user", "content": Q}]}, 400, "n: 2 choices asked; ragtune"),
    ({"model": "rag", "messages": [{"role": "robot", "content": Q}]}, 400, "messages.0.role: Input should be"),
    ({"model": "rag", "messages": [{"role": "assistant", "content": Q}]}, 400, "the last message must be the user"),
    ({"model": "rag", "messages": [{"role": "user", "content": "  "}]}, 400, "the last message must be the user"),
    ({"model": "rag", "messages": [{"role": "user", "content": Q}] * 5}, 400, "at most 4 per request"),
    ({"model": "rag", "messages": [{"role": "user", "content": "x" * 401}]}, 400, "at most 400 per request"),
    ({"model": "rag", "messages": [{"role": "user", "content": "x" * 3000}]}, 413, "over 2048 bytes"),
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[" * 2000, 400, "nested too deeply"),  # was a RecursionError, so a 500
    (b'{"model": "rag", "metadata": {"a": ' + b"[" * 900 + b"]" * 900 + b'}, "messages": []}', 400,
     "nested too deeply: arrays and objects 902 levels inside each other, at most 32"),
])
def test_bad_requests_get_a_4xx_in_the_openai_error_shape(live, body, status, says):
    _, url = live
    reply = _post(url, body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert says in error["message"] and set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in reply.text


def test_routes_health_and_metrics(live):
    _, url = live
    _ask(url, "sam", "rag")
    assert httpx.get(f"{url}/nowhere").json()["error"]["code"] == "unknown_route"
    wrong = httpx.get(f"{url}/v1/chat/completions")
    assert wrong.status_code == 405 and "POST /v1/chat/completions" in wrong.json()["error"]["message"]
    assert httpx.get(f"{url}/health").json() == {"status": "ok", "queue_depth": 0}
    text = httpx.get(f"{url}/metrics").text
    assert 'ragtune_requests_total{mode="rag",status="200"}' in text
    assert 'ragtune_requests_total{mode="none",status="401"}' in text
    assert 'ragtune_request_latency_seconds_bucket{le="0.05",mode="rag"}' in text
    assert "ragtune_queue_depth 0.0" in text and 'ragtune_batch_size_bucket{le="1"}' in text


def test_a_concurrent_mixed_burst_through_http_equals_direct_answers(live):
    project, url = live
    who = {"hana": HANA, "sam": SAM}
    calls = [(("hana", "sam")[i % 2], ("prompt_only", "rag", "finetuned", "combined", "auto")[i % 5],
              ("how many days of annual leave ?", Q, "when is the office open ?")[i % 3]) for i in range(30)]
    before = len(project.worker.batches)
    with ThreadPoolExecutor(max_workers=30) as pool:
        got = list(pool.map(lambda c: _ask(url, c[0], c[1], c[2]), calls))
    assert max(size for _, size in project.worker.batches[before:]) > 1
    for (user, mode, question), reply in zip(calls, got):
        direct = project.ask_many([question], mode=mode, principal=who[user])[0]
        assert (reply.choices[0].message.content, reply.ragtune["adapter"]) == (direct.text, direct.adapter)
        assert [e["text"] for e in reply.ragtune["evidence"]] == [e.text for e in direct.evidence]
        assert {e["chunk_id"] for e in reply.ragtune["evidence"]} <= {s["chunk_id"] for s in reply.ragtune["sources"]}


def test_tokens_are_never_plain_text_and_must_resolve():
    with pytest.raises(ValueError, match="plain-text token does not belong"):
        ServeConfig.model_validate({"tokens": [{"user": "a", "token": "s3cret"}]})
    with pytest.raises(ValueError, match="exactly one of token_env"):
        TokenConfig(user="a")
    with pytest.raises(ServeConfigError, match="TOK_X is not set"):
        TokenTable.from_config([TokenConfig(user="a", token_env="TOK_X")], environ={})
    with pytest.raises(ServeConfigError, match="serve.tokens is empty"):
        TokenTable.from_config([], environ={})


def test_ragtune_serve_command_binds_localhost_and_answers(two_audiences_config, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {**two_audiences_config, "serve": {"port": port, "tokens": [{"user": "sam", "groups": ["sales"],
                                                                        "token_env": "RAGTUNE_TEST_TOKEN"}]}}
    (tmp_path / "ragtune.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "RAGTUNE_TEST_TOKEN": "tok", "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "framework", "serve", "-c", str(tmp_path / "ragtune.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        reply = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="tok", max_retries=0).chat.completions.create(
            model="finetuned", messages=[{"role": "user", "content": Q}])
        assert reply.ragtune["adapter"] == "t-v0001"
    finally:
        proc.terminate()
        proc.wait(20)
    assert f"ragtune serving on http://127.0.0.1:{port}/v1 for 1 token(s)" in proc.stdout.read()
