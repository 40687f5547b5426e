"""The llm generator against a local fake OpenAI-compatible server that misbehaves on purpose."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import local_http_server, project_config, send_chat_reply, send_json

from framework.dataset.filters import DatasetTooSmallError
from framework.dataset.teacher import OpenAICompatibleTeacher, TeacherConfigError
from framework.project import Project, load_config_dict


class _Handler(BaseHTTPRequestHandler):
    """Replies by what the prompt holds: MALFORMED never follows the format, FLAKY fails once
    with 500, BROKEN always fails with 503, anything else gets a well-formed answer."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        with server.lock:
            server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            flaky_seen = server.flaky_seen
            if "FLAKY" in prompt:
                server.flaky_seen += 1
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "not found"})
        if "BROKEN" in prompt or ("FLAKY" in prompt and flaky_seen == 0):
            return self._send(503 if "BROKEN" in prompt else 500, {"error": "overloaded"})
        if "GARBLED" in prompt:
            return self._send(200, {"unexpected": True})
        send_chat_reply(self, _reply(prompt))

    def _send(self, status, payload):
        send_json(self, status, payload)


def _reply(prompt: str) -> str:
    if prompt.startswith("Rewrite the question"):
        question = prompt.rsplit("Question: ", 1)[1].strip().rstrip("?")
        return f"1. Could you tell me: {question}?\n2. I wonder, {question[0].lower() + question[1:]}?\nThanks!"
    if "MALFORMED" in prompt:
        return "Sure! Here is something that is not in the requested format."
    passage = prompt.split("Passage: ", 1)[1].split("\n\nReply exactly", 1)[0]
    first = re.split(r"(?<=[.!?])\s+", passage.replace("\n", " ").strip())[0]
    words = re.findall(r"[A-Za-z]+", first)
    return f"**Question:** What does the policy say about {' '.join(words[1:4]).lower()}?\n**Answer:** {first}"


@pytest.fixture
def fake_openai():
    with local_http_server(_Handler, lock=threading.Lock(), requests=[], flaky_seen=0) as server:
        yield server


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def _chat(text):
    return [{"role": "user", "content": text}]


def test_teacher_retries_transient_errors_and_reports_lasting_ones(fake_openai):
    teacher = OpenAICompatibleTeacher(_url(fake_openai), model="fake", api_key="k-123", retries=2, backoff_s=0.01)
    replies = teacher.generate([_chat("Passage: FLAKY one.\n\nReply exactly"), _chat("Passage: BROKEN.\n\nReply exactly"),
                                _chat("Passage: GARBLED.\n\nReply exactly"), _chat("Passage: Fine text.\n\nReply exactly")])
    assert replies[0].startswith("**Question:**") and replies[3].endswith("Fine text.")
    assert replies[1] is None and replies[2] is None
    assert teacher.stats["failed"] == 2 and teacher.stats["retries"] == 5  # FLAKY once, BROKEN twice, GARBLED twice
    assert "503" in teacher.last_error or "malformed" in teacher.last_error
    assert {r["auth"] for r in fake_openai.requests} == {"Bearer k-123"}
    assert fake_openai.requests[0]["body"]["model"] == "fake"


def test_teacher_does_not_retry_client_errors(fake_openai):
    teacher = OpenAICompatibleTeacher(f"http://127.0.0.1:{fake_openai.server_address[1]}/wrong", model="m",
                                      retries=3, backoff_s=0.01)
    assert teacher.generate([_chat("hi")]) == [None]
    assert teacher.stats["requests"] == 1 and "HTTP 404" in teacher.last_error


def test_teacher_unreachable_is_counted_not_raised():
    teacher = OpenAICompatibleTeacher("http://127.0.0.1:9/v1", model="m", retries=1, backoff_s=0.01, timeout_s=2)
    assert teacher.generate([_chat("hi")]) == [None]
    assert teacher.stats["failed"] == 1 and "ConnectError" in teacher.last_error


def _llm_project(tmp_path, docs, server, **dataset):
    teacher = {"base_url": _url(server), "api_model": "fake-teacher", "api_key_env": "RAGTUNE_TEST_KEY",
               "retry_backoff_s": 0.01, "http_retries": 1}
    cfg = project_config(tmp_path, docs, dataset={"generator": "llm", "teacher": teacher, "paraphrases": 2,
                                                  "min_examples": 2, **dataset})
    return Project(load_config_dict(cfg), show_progress=False)


def test_synth_through_an_openai_compatible_endpoint(tmp_path, fake_openai, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, topic in enumerate(("parking", "badges", "lockers", "printers", "canteen")):
        (docs / f"{topic}.md").write_text(f"The {topic} rules apply to every employee in building {i + 1}.")
    (docs / "odd.md").write_text("MALFORMED passage that the teacher never answers properly.")
    (docs / "down.md").write_text("BROKEN passage whose requests always fail on the server.")
    monkeypatch.setenv("RAGTUNE_TEST_KEY", "k-secret")
    project = _llm_project(tmp_path, docs, fake_openai, heldout_documents_fraction=0.0)
    project.ingest()
    card = project.synthesize()
    assert card.dropped["unparseable_reply"] == 1 and card.dropped["teacher_error"] == 1
    assert card.teacher["parse_retries"] == 1  # the malformed one was asked again, more strictly
    assert card.teacher["http_failed"] == 1 and "503" in card.teacher["http_last_error"]
    assert card.generated_by_generator == {"llm:llm": 5, "llm:paraphrase": 10}
    rows = [json.loads(x) for x in (project.dataset_dir() / "train.jsonl").read_text().splitlines()]
    rows += [json.loads(x) for x in (project.dataset_dir() / "eval.jsonl").read_text().splitlines()]
    assert {r["generator"] for r in rows} == {"llm:llm", "llm:paraphrase"}
    assert all(r["parent_id"] for r in rows if r["generator"] == "llm:paraphrase")
    assert {r["auth"] for r in fake_openai.requests} == {"Bearer k-secret"}
    assert "k-secret" not in (project.dataset_dir() / "card.json").read_text()
    # The failed chunk is not cached: the next run asks for it again and reuses the rest.
    again = project.synthesize()
    assert again.incremental["chunks_reused"] == 6 and again.incremental["chunks_generated"] == 1


def test_missing_api_key_variable_is_a_clear_error(tmp_path, corpus, fake_openai, monkeypatch):
    monkeypatch.delenv("RAGTUNE_TEST_KEY", raising=False)
    project = _llm_project(tmp_path, corpus, fake_openai)
    project.ingest()
    with pytest.raises(TeacherConfigError, match="RAGTUNE_TEST_KEY is not set"):
        project.synthesize()


def test_all_requests_failing_ends_in_a_loud_too_small_error(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("The parking rules apply to every employee in the building.")
    cfg = project_config(tmp_path, docs, dataset={"generator": "llm", "min_examples": 1, "teacher": {
        "base_url": "http://127.0.0.1:9/v1", "api_model": "m", "http_retries": 0, "timeout_s": 2}})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    with pytest.raises(DatasetTooSmallError, match="teacher_error"):
        project.synthesize()
