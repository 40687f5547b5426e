"""No personal data reaches any file of a dataset version, whatever generator wrote it.

A corpus plants every kind the scanner knows in the sentence shapes real documents use (in lists,
at a sentence's end, inside parentheses, after a colon, next to other entities). It goes through
every generator: extractive with template paraphrases; llm through a local OpenAI-compatible
endpoint whose teacher also tries to leak the values in altered form (it "remembers" them); llm
with the tiny in-process model; and an imported Q/A file. Then every file of every version is
searched for each planted string and its digits-only form.
"""

import json
import re
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import local_http_server, project_config, send_chat_reply

from framework.config import DatasetConfig
from framework.dataset.redaction import Redactor
from framework.project import Project, load_config_dict
from framework.records import Chunk

PLANTED = {
    "email": ["jane.doe@example.org", "payroll-team@contoso.de"],
    "phone": ["+44 20 7946 0958", "+1 415-555-0132"],
    "national_id": ["401-23-4567", "36574261809", "2 95 10 99 126 111 93"],
    "card": ["4539 1488 0343 6467", "378282246310005"],
    "iban": ["DE11586470316028527288", "DE89 3704 0044 0532 0130 00"],
    "aws_key": ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
    "api_key": ["sk-proj-AbCdEfGhIjKlMnOpQrSt1234", "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
                "AIza" + "SyA1234567890abcdefghijklmnopqrstu" + "v"],
}
VALUES = [v for vs in PLANTED.values() for v in vs]
SHAPES = [
    "Refunds for the {topic} team go to {v}.",  # at the end of a sentence
    "The backup contact for {topic} ({v}) answers on weekends.",  # inside parentheses
    "Escalation for {topic}: {v}",  # after a colon
    "Ana Lopez, {v}, and Harbor Bank handle {topic} approvals on Monday.",  # next to other entities
    "- {topic} fallback: {v}",  # in a list
]


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _corpus(root):
    root.mkdir()
    for i, (kind, values) in enumerate(PLANTED.items()):
        lines = [f"# {kind.replace('_', ' ').title()} directory", ""]
        for j, v in enumerate(values):
            for k, shape in enumerate(SHAPES):
                lines.append(shape.format(v=v, topic=f"{kind.split('_')[0]} desk {j}{k}"))
        lines.append(f"Every employee must review the {kind} directory each quarter.")
        (root / f"{kind}.md").write_text("\n".join(lines) + "\n")
    (root / "leave.md").write_text("Every employee receives 28 days of annual leave per year.\n"
                                   "Employees must submit leave requests 10 days in advance.\n")
    return root


def _imports(path):
    rows = [{"messages": [{"role": "user", "content": f"Where do refunds go for desk {i}?"},
                          {"role": "assistant", "content": f"Refunds go to {v} as agreed."}]}
            for i, v in enumerate(VALUES)]
    rows += [{"messages": [{"role": "user", "content": f"How many leave days does employee {i} get?"},
                           {"role": "assistant", "content": "Every employee receives 28 days of annual leave."}]}
             for i in range(25)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


class _LeakyTeacher(BaseHTTPRequestHandler):
    """An OpenAI-compatible teacher that answers from the passage and also writes every planted value it
    'remembers', altered the way generators alter them (prefix replaced, digits only, upper case)."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        self.server.prompts.append(prompt)
        n = len(self.server.prompts)
        leak = VALUES[n % len(VALUES)]
        altered = [f"what{_digits(leak)}", leak.upper(), _digits(leak)[-10:]]
        if prompt.startswith("Rewrite the question"):
            q = prompt.rsplit("Question: ", 1)[1].strip().rstrip("?")
            reply = f"1. Could you tell me {q} via {altered[0]}?\n2. I wonder whether {q}, {altered[1]}?"
        else:
            passage = prompt.split("Passage: ", 1)[1].split("\n\nReply exactly", 1)[0]
            first = re.split(r"(?<=[.!?])\s+", passage.replace("\n", " ").strip())[0]
            reply = f"Question: What does the directory say about {altered[2]}?\nAnswer: {first} Also {altered[0]}."
        send_chat_reply(self, reply)


@pytest.fixture
def leaky_teacher():
    with local_http_server(_LeakyTeacher, prompts=[]) as server:
        yield server


def _leaks(text: str) -> list[str]:
    """Planted values in `text`: as written (any case), digits-only, or as the digits of any number in it."""
    low, runs = text.lower(), ["".join(re.findall(r"\d", r)) for r in re.findall(r"\d(?:[ ./-]?\d)*", text)]
    found = [v for v in VALUES if v.lower() in low]
    for v in VALUES:
        d = _digits(v)
        if len(d) >= 6 and (d in text or any(d in r or (len(r) >= 8 and r in d) for r in runs)):
            found.append(f"digits of {v}")
    return found


def test_planted_values_reach_no_file_with_any_generator(tmp_path, leaky_teacher, tiny_model, monkeypatch):
    docs = _corpus(tmp_path / "docs")
    url = f"http://127.0.0.1:{leaky_teacher.server_address[1]}/v1"
    common = {"min_examples": 4, "raft": {"fraction": 1.0}, "heldout_documents_fraction": 0.0, "paraphrases": 2,
              "round_trip": False}  # RAFT still retrieves distractors for every row
    runs = {
        "extractive": {"generator": "extractive"},
        "endpoint": {"generator": "llm", "teacher": {"base_url": url, "api_model": "leaky", "retry_backoff_s": 0.01}},
        "tiny": {"generator": "llm", "teacher": {"max_new_tokens": 12, "parse_attempts": 1},
                 "import": [str(_imports(tmp_path / "imported.jsonl"))]},
        "drop": {"generator": "extractive", "pii_mode": "drop"},
    }
    base = Project(load_config_dict(project_config(tmp_path, docs, tiny_model)), show_progress=False)
    base.ingest()
    assert any(any(v in c.text for v in VALUES) for c in base.index.rows())  # the index itself keeps them
    for name, dataset in runs.items():
        cfg = project_config(tmp_path, docs, tiny_model, dataset={**common, **dataset, "name": name})
        card = Project(load_config_dict(cfg), show_progress=False).synthesize()
        folder = tmp_path / "ws" / "datasets" / name / card.version
        files = sorted(p.name for p in folder.iterdir())
        assert files == ["card.json", "eval.jsonl", "eval.openai.jsonl", "generated.jsonl", "train.jsonl",
                         "train.openai.jsonl"]
        for f in folder.iterdir():
            assert _leaks(f.read_text()) == [], (name, f.name)
        assert card.kept > 0 or name == "tiny", name
        chunks = card.pii["chunks"]["found"]
        assert set(chunks) >= set(PLANTED) and chunks == card.pii["chunks"]["redacted"], name
        assert sum(chunks.values()) >= len(VALUES) * len(SHAPES), name
    # the remote teacher never saw a planted value, only placeholders
    assert leaky_teacher.prompts and not [p for p in leaky_teacher.prompts if _leaks(p)]
    assert any("[IBAN]" in p for p in leaky_teacher.prompts)
    endpoint = json.loads((tmp_path / "ws" / "datasets" / "endpoint" / "latest" / "card.json").read_text())
    assert sum(endpoint["pii"]["generated"]["found"].values()) > 0  # the teacher's own leaks, caught
    tiny = json.loads((tmp_path / "ws" / "datasets" / "tiny" / "latest" / "card.json").read_text())
    assert sum(tiny["pii"]["written"]["found"].values()) >= len(VALUES)  # the imported file's, caught


def test_the_last_scan_catches_altered_forms_of_found_values():
    guard = Redactor(DatasetConfig())
    text = "Pay DE11586470316028527288, call +44 20 7946 0958, mail jane.doe@example.org, card 4539 1488 0343 6467."
    chunk = Chunk(id="c", doc_id="d", position=0, text=text, title="t", uri="", source="s", doc_hash="h",
                  acl=("public",))
    assert guard.chunk(chunk).text == "Pay [IBAN], call [PHONE], mail [EMAIL], card [CARD_NUMBER]."
    for altered, expected in [
        ("Refunds go to what11586470316028527288?", "Refunds go to what[IBAN]?"),  # the prefix became a word
        ("Call 020 7946 0958 or 2079460958.", "Call [PHONE] or [PHONE]."),  # national form, digits only
        ("Mail JANE.DOE@EXAMPLE.ORG", "Mail [EMAIL]"),
        ("Card ending 1488034364 67", "Card ending [CARD_NUMBER]"),  # a slice, regrouped
        ("Room 4539, order 2024-01-15, 28 days", "Room 4539, order 2024-01-15, 28 days"),  # unrelated numbers stay
    ]:
        assert guard.text(altered, "written") == expected
    assert guard.report()["written"]["found"] == {"card": 1, "email": 1, "iban": 1, "phone": 2}
    off = Redactor(DatasetConfig(pii_mode="off"))
    assert off.chunk(chunk) is chunk and off.rows([{"question": text, "answer": "", "messages": []}])[0]["question"] == text
