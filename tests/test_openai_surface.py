"""The OpenAI chat-completions surface that tools rely on, against `ragtune serve` on 127.0.0.1: `usage` in
every response and in the stream's usage chunk, `stop`, `response_format`, `n`, `seed`, `user` and
`safety_identifier`, the sampling fields' ranges (NaN is a 400), a lone UTF-16 surrogate; called with the
official openai client, raw HTTP where the wire bytes matter, and LangChain's ChatOpenAI as a user would
point it at ragtune (a multi-turn chat, streaming with usage); `stop` and `usage` through a remote backend."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest
from asgi_server import serving
from conftest import EXPENSES, HANDBOOK, project_config

from framework.experiments.assignment import assign_unit
from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.serving.auth import TokenTable
from framework.serving.remote import OpenAIGenerator
from framework.serving.server import create_app

HANA, SAM = Principal(user="hana", groups=("hr",)), Principal(user="sam", groups=("sales",))
TOKENS = [{"user": "hana", "groups": ["hr"], "token_sha256": hashlib.sha256(b"hana-secret").hexdigest()},
          {"user": "sam", "groups": ["sales"], "token_sha256": hashlib.sha256(b"sam-secret").hexdigest()}]
SECRETS = {"hana": "hana-secret", "sam": "sam-secret"}
SPLIT = {"name": "by-end-user", "unit": "end_user", "salt": "surface-1",
         "arms": [{"name": "closed", "mode": "prompt_only"}, {"name": "open", "mode": "rag"}]}
Q = "what is the meal limit ?"
HR_DOC = "hr:expenses.txt"


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_model):
    """A project with a public and an hr-only source, an end-user experiment, two tokens; no adapter trained
    (the surface is the same for every mode)."""
    tmp = tmp_path_factory.mktemp("openai-surface")
    public, private = tmp / "public", tmp / "private"
    public.mkdir()
    private.mkdir()
    (public / "handbook.md").write_text(HANDBOOK)
    (private / "expenses.txt").write_text(EXPENSES)
    cfg = project_config(tmp, public, tiny_model,
                         sources=[{"name": "docs", "type": "files", "path": str(public), "public": True},
                                  {"name": "hr", "type": "files", "path": str(private), "acl": ["hr"]}],
                         generator={"max_new_tokens": 16, "answer_style": "generative"},
                         experiments=[SPLIT], experiments_store=f"sqlite:///{tmp / 'ab.sqlite'}",
                         serve={"tokens": TOKENS})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    app = create_app(project.router, project.config.serve, tokens=TokenTable.from_config(project.config.serve.tokens,
                                                                                          environ={}),
                     experiments=project.experiments)
    with serving(app) as url:
        yield project, url
    project.close()


def _client(url, who="hana"):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=SECRETS[who], max_retries=0)


def _ask(url, model="prompt_only", question=Q, who="hana", **kw):
    return _client(url, who).chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                                     **kw)


def _post(url, body: bytes | dict):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/v1/chat/completions", content=content,
                      headers={"authorization": "Bearer hana-secret", "content-type": "application/json"})


def _prompt_tokens(project, prompt: str) -> int:
    return len(project.generator.tokenizer(prompt, add_special_tokens=False)["input_ids"])


def test_every_response_reports_the_tokens_the_model_read_and_wrote(live):
    project, url = live
    for model in ("prompt_only", "rag"):
        got = _ask(url, model)
        direct = project.ask_many([Q], mode=model, principal=HANA)[0]
        assert got.choices[0].message.content == direct.text
        assert got.usage.completion_tokens == got.ragtune["generated_tokens"] == direct.generated_tokens > 0
        assert got.usage.prompt_tokens == _prompt_tokens(project, direct.prompt) > 0
        assert got.usage.total_tokens == got.usage.prompt_tokens + got.usage.completion_tokens
    assert _ask(url, max_tokens=2).usage.completion_tokens == 2


def test_prompt_tokens_count_each_row_without_the_batch_s_padding(live):
    project, _ = live
    short, long = [{"role": "user", "content": "hi"}], [{"role": "user", "content": "what is the meal limit per day ?"}]
    out = project.generator.complete([short, long], max_new_tokens=2)
    rendered = [project.generator.render(c) for c in (short, long)]
    assert [g.prompt_tokens for g in out] == [_prompt_tokens(project, prompt) for prompt in rendered]
    assert out[0].prompt_tokens < out[1].prompt_tokens


def test_include_usage_sends_a_last_chunk_with_usage_and_no_choices(live):
    _, url = live
    whole = _ask(url)
    chunks = list(_ask(url, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None and len(c.choices) == 1 for c in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == whole.choices[0].message.content
    assert len({c.id for c in chunks}) == 1
    with httpx.stream("POST", f"{url}/v1/chat/completions", headers={"authorization": "Bearer hana-secret"},
                      json={"model": "prompt_only", "stream": True, "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": Q}]}) as reply:
        events = [line[6:] for line in reply.iter_lines() if line.startswith("data: ")]
    bodies = [json.loads(e) for e in events[:-1]]
    assert events[-1] == "[DONE]" and all("usage" in b for b in bodies)  # null on all but the last, as documented
    assert bodies[-1]["choices"] == [] and bodies[-1]["usage"] == whole.usage.model_dump(exclude_none=True)
    plain = list(_ask(url, stream=True))
    assert all(c.usage is None and c.choices for c in plain)


def test_stop_sequences_cut_the_answer_before_the_first_one_streamed_or_not(live):
    _, url = live
    asked = [(m, q) for q in (Q, "when is the office open ?", "how many days of annual leave ?")
             for m in ("rag", "prompt_only")]
    for model, question in asked:  # the first answer of 4 words or more
        whole = _ask(url, model, question)
        if len(whole.choices[0].message.content.split()) >= 4:
            break
    text = whole.choices[0].message.content
    words = text.split()
    later, earlier = words[3], words[1]
    for stop in (later, [later, earlier], [later, "no such words here"]):
        stops = [stop] if isinstance(stop, str) else stop
        expected = text[:min(text.find(s) for s in stops if s in text)]
        got = _ask(url, model, question, stop=stop)
        assert got.choices[0].message.content == expected and got.choices[0].finish_reason == "stop"
        assert got.usage.completion_tokens < whole.usage.completion_tokens  # generation ended at the stop
        streamed = list(_ask(url, model, question, stop=stop, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == expected
        assert streamed[-1].choices[0].finish_reason == "stop"
    assert _ask(url, model, question, stop="no such words here").choices[0].message.content == text
    with pytest.raises(openai.BadRequestError, match="stop: 5 sequences; at most 4"):
        _ask(url, stop=["a", "b", "c", "d", "e"])
    with pytest.raises(openai.BadRequestError, match="stop: an empty stop sequence"):
        _ask(url, stop=[""])


def test_response_format_text_is_accepted_and_json_is_refused_with_why(live):
    _, url = live
    plain = _ask(url).choices[0].message.content
    assert _ask(url, response_format={"type": "text"}).choices[0].message.content == plain
    with pytest.raises(openai.BadRequestError, match="response_format: type 'json_object' is not supported"):
        _ask(url, response_format={"type": "json_object"})
    schema = {"name": "limit", "schema": {"type": "object", "properties": {"eur": {"type": "number"}}}}
    with pytest.raises(openai.BadRequestError, match="response_format: type 'json_schema' is not supported") as err:
        _ask(url, response_format={"type": "json_schema", "json_schema": schema})
    assert err.value.body["param"] == "response_format"


def test_n_seed_and_the_end_user_fields_as_openai_documents_them(live):
    project, url = live
    plain = _ask(url).choices[0].message.content
    assert len(_ask(url, n=1).choices) == 1
    assert {_ask(url, seed=s).choices[0].message.content for s in (1, 2, 12345)} == {plain}  # greedy: no effect
    with pytest.raises(openai.BadRequestError, match="n: 2 choices asked; ragtune returns 1") as err:
        _ask(url, n=2)
    assert err.value.body["param"] == "n"
    # the end user is the experiment's unit, under either name; it never changes what the token may read
    split = next(e for e in project.config.experiments if e.name == SPLIT["name"])
    end_users = ("zed-1", "zed-2", "zed-3", "zed-4")
    assert {assign_unit(split, u).arm for u in end_users} == {"closed", "open"}
    for end_user in end_users:
        arm = assign_unit(split, end_user).arm
        assert _ask(url, "by-end-user", user=end_user).ragtune["arm"] == arm
        assert _ask(url, "by-end-user", safety_identifier=end_user).ragtune["arm"] == arm
    assert HR_DOC in {s["doc_id"] for s in _ask(url, "rag", who="hana").ragtune["sources"]}
    for field in ("user", "safety_identifier"):
        assert HR_DOC not in {s["doc_id"] for s in _ask(url, "rag", who="sam", **{field: "hana"}).ragtune["sources"]}
    with pytest.raises(openai.BadRequestError, match="user and safety_identifier name different end users"):
        _ask(url, user="a", safety_identifier="b")


M = [{"role": "user", "content": Q}]


@pytest.mark.parametrize("body, param, says", [
    (b'{"model": "rag", "temperature": NaN, "messages": [{"role": "user", "content": "hi"}]}', "temperature",
     "temperature: Input should be a finite number"),
    (b'{"model": "rag", "temperature": Infinity, "messages": [{"role": "user", "content": "hi"}]}', "temperature",
     "temperature: Input should be a finite number"),
    (b'{"model": "rag", "top_p": -Infinity, "messages": [{"role": "user", "content": "hi"}]}', "top_p",
     "top_p: Input should be a finite number"),
    (b'{"model": "rag", "presence_penalty": 1e999, "messages": [{"role": "user", "content": "hi"}]}',
     "presence_penalty", "presence_penalty: Input should be a finite number"),
    ({"model": "rag", "temperature": 2.5, "messages": M}, "temperature", "temperature: Input should be less than"),
    ({"model": "rag", "top_p": 1.5, "messages": M}, "top_p", "top_p: Input should be less than or equal to 1"),
    ({"model": "rag", "frequency_penalty": -3, "messages": M}, "frequency_penalty", "greater than or equal to -2"),
    (b'{"model": "rag", "messages": [{"role": "user", "content": "hi \\ud800"}]}', "messages",
     "messages.0.content: the text holds a lone UTF-16 surrogate escape (\\ud800)"),
    (b'{"model": "rag", "messages": [{"role": "user", "content": "\\udc00 hi"}]}', "messages",
     "lone UTF-16 surrogate escape (\\udc00)"),
    (b'{"model": "rag", "user": "\\ud83d", "messages": [{"role": "user", "content": "hi"}]}', "user",
     "user: the text holds a lone UTF-16 surrogate"),
    ({"model": "rag", "stream_options": {"include_usage": True}, "messages": M}, "stream_options",
     "stream_options: only allowed when stream is true"),
    ({"model": "rag", "stream": True, "stream_options": {"include_usage": "yes"}, "messages": M}, "stream_options",
     "stream_options.include_usage: Input should be a valid boolean"),
    ({"model": "rag", "safety_identifier": "x" * 129, "messages": M}, "safety_identifier", "at most 128 characters"),
    ({"model": "rag", "stop": 7, "messages": M}, "stop", "stop.str: Input should be a valid string"),
    ({"model": "rag", "response_format": {"type": "text", "strict": True}, "messages": M}, "response_format",
     "response_format: ['strict'] unknown for type text"),
    ({"model": "rag", "tools": [], "messages": M}, "tools", "tools: unknown field"),
    ({"model": "rag", "logprobs": True, "messages": M}, "logprobs", "logprobs: unknown field"),
])
def test_unsupported_or_invalid_fields_are_a_400_naming_the_field(live, body, param, says):
    _, url = live
    reply = _post(url, body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert says in error["message"] and error["param"] == param, error
    assert "hex escape" not in error["message"]


def test_a_paired_surrogate_escape_is_text(live):
    _, url = live
    body = b'{"model": "prompt_only", "messages": [{"role": "user", "content": "meal limit \\ud83d\\ude00 ?"}]}'
    assert _post(url, body).status_code == 200


def test_langchain_chat_openai_multi_turn_and_streaming_with_usage(live):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    project, url = live
    chat = ChatOpenAI(model="rag", base_url=f"{url}/v1", api_key="hana-secret", max_retries=0, temperature=0,
                      seed=7)
    turns = [SystemMessage("Answer from the documents."), HumanMessage("how many days of annual leave ?"),
             AIMessage("28 days."), HumanMessage(Q)]
    reply = chat.invoke(turns)
    direct = project.ask_many([Q], mode="rag", principal=HANA)[0]
    assert reply.content == direct.text
    assert reply.usage_metadata["output_tokens"] == direct.generated_tokens > 0
    assert reply.usage_metadata["input_tokens"] == _prompt_tokens(project, direct.prompt)
    assert reply.response_metadata["finish_reason"] in ("stop", "length")
    chunks = list(chat.stream(turns, stream_usage=True))
    whole = chunks[0]
    for c in chunks[1:]:
        whole += c
    assert whole.content == direct.text and whole.usage_metadata == reply.usage_metadata
    stopped = chat.invoke(turns, stop=[direct.text.split()[1]])
    assert stopped.content == direct.text[:direct.text.find(direct.text.split()[1])]


class _Endpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible generation endpoint that echoes what it was sent, with usage."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.seen.append(body)
        reply = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                         "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def test_a_remote_backend_gets_the_stop_sequences_and_reports_its_usage():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = OpenAIGenerator(f"http://127.0.0.1:{server.server_address[1]}/v1", model="base")
        conversation = [{"role": "user", "content": Q}]
        out = gen.complete([conversation, conversation], max_new_tokens=5, stop=[("\n", "Sources:"), ()])
    finally:
        server.shutdown()
    assert [(g.prompt_tokens, g.tokens) for g in out] == [(11, 1), (11, 1)]
    assert sorted(body.get("stop", []) for body in server.seen) == [[], ["\n", "Sources:"]]
