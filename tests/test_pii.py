import json
import re
from collections import Counter

import pytest
from conftest import project_config

from framework.config import DatasetConfig
from framework.dataset.pii import Scrubber
from framework.dataset.redaction import Redactor
from framework.project import Project, load_config_dict
from framework.records import QAPair

PLANTED = {
    "email": "jane.doe@example.org", "phone": "+44 20 7946 0958", "national_id": "401-23-4567",
    "card": "4539 1488 0343 6467", "iban": "GB82 WEST 1234 5698 7654 32", "api_key": "sk-proj-AbCdEfGhIjKlMnOpQrSt1234",
    "aws_key": "AKIAIOSFODNN7EXAMPLE", "password": "password: hunter2hunter",
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_each_kind_is_found(kind):
    text, counts = Scrubber().redact(f"Note that {PLANTED[kind]} is on file.")
    assert PLANTED[kind] not in text and sum(counts.values()) == 1
    assert counts[{"aws_key": "aws_key", "password": "password"}.get(kind, kind)] == 1


def test_numbers_without_a_valid_checksum_are_left_alone():
    text = ("Order 4539 1488 0343 6468 shipped on 2024-01-15; the deductible is 2,000 USD; "
            "IBAN-like GB00 WEST 1234 5698 7654 32; room 12345.")
    assert Scrubber().redact(text) == (text, Scrubber().redact("")[1])


def test_extra_patterns_from_config_and_bad_regex():
    text, counts = Scrubber(extra={"employee_id": r"\bEMP-\d{6}\b"}).redact("Badge EMP-123456 issued.")
    assert text == "Badge [EMPLOYEE_ID] issued." and counts == {"employee_id": 1}
    with pytest.raises(ValueError, match="dataset.pii_patterns.bad"):
        Scrubber(extra={"bad": "(unclosed"})


def test_allowed_findings_are_kept():
    scrubber = Scrubber(allow=(r"^helpdesk@contoso\.com$", r"^1-800-"))
    text = "Write to helpdesk@contoso.com or jane@contoso.com, or call 1-800-555-1212."
    assert scrubber.redact(text) == ("Write to helpdesk@contoso.com or [EMAIL], or call 1-800-555-1212.",
                                     Counter(email=1))


def _pii_corpus(tmp_path):
    docs = tmp_path / "pii-docs"
    docs.mkdir()
    (docs / "contacts.md").write_text(
        f"The payroll contact is reachable at {PLANTED['email']} or {PLANTED['phone']}.\n"
        f"Salaries are paid from the account {PLANTED['iban']} every month.\n"
        f"The travel card number is {PLANTED['card']} and it must never be shared.\n"
        f"The test record uses the social security number {PLANTED['national_id']}.\n"
        f"The export key is {PLANTED['api_key']} and the storage key is {PLANTED['aws_key']}.\n"
        f"The legacy portal uses {PLANTED['password']} until further notice.\n"
        "Employee badges must be worn at all times. The canteen is open from 11:30 to 14:00.\n")
    (docs / "leave.md").write_text("Every employee receives 28 days of annual leave per year.\n"
                                   "Employees must submit leave requests 10 days in advance.\n")
    return docs


@pytest.mark.parametrize("mode", ["redact", "drop"])
def test_planted_pii_never_reaches_the_dataset(tmp_path, mode):
    docs = _pii_corpus(tmp_path)
    cfg = project_config(tmp_path, docs, index={"embedder": "hashing", "chunk_size": 256},
                         dataset={"pii_mode": mode, "min_examples": 2, "raft": {"fraction": 1.0},
                                  "heldout_documents_fraction": 0.0})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    card = project.synthesize()
    written = "".join(p.read_text() for p in project.dataset_dir().iterdir())
    assert [k for k, v in PLANTED.items() if v in written] == []
    assert sum(card.pii["found"].values()) >= len(PLANTED)
    if mode == "redact":
        assert "[EMAIL]" in written and "[CARD_NUMBER]" in written
    else:  # no row holds a placeholder (the generator may skip such sentences or the pairs are dropped)
        rows = [json.loads(x) for x in (project.dataset_dir() / "train.jsonl").read_text().splitlines()]
        assert rows and not any(re.search(r"\[[A-Z_]+\]", r["question"] + r["answer"]) for r in rows)


def test_drop_mode_leaves_out_every_pair_that_touched_personal_data():
    guard = Redactor(DatasetConfig(pii_mode="drop"))
    pairs = [QAPair("Who is the payroll contact?", "[EMAIL]", "short", "Reach payroll at [EMAIL]."),
             QAPair("How many leave days?", "28 days", "short", "Every employee receives 28 days."),
             QAPair(f"Is {PLANTED['email']} the contact?", "Yes", "short", "Contact.")]
    kept = guard.pairs(pairs)
    assert [p.answer for p in kept] == ["28 days"] and guard.dropped == 2
