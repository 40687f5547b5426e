"""A document that turns into no real text (cut short to a markup fragment, emptied to blank lines,
only tags left) keeps its indexed version and is reported, in every format: "empty" is decided in one
place (framework.ingest.contract.real_text) for every connector."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import project_config, write_minimal_pdf

from connectors.files import parse_file
from connectors.formats import ParseError
from framework.project import Project, load_config_dict

GOOD = "The parking garage closes at 22:00 on weekdays."
FORMATS = {  # name: (a good version, what it turned into)
    "notes.md": (f"# Parking\n\n{GOOD}\n", "#\n\n   \n"),
    "notes.txt": (GOOD, "\n\n \t\n"),
    "page.html": (f"<html><body><p>{GOOD}</p></body></html>", "<ht"),
    "page.htm": (f"<html><body><p>{GOOD}</p></body></html>", "<html><body><p> </p><div></div></body></html>"),
    "table.csv": (f"rule,value\nparking,{GOOD}\n", ",\n , \n"),
    "data.json": (f'{{"rule": "{GOOD}"}}', '{"rule": " "}'),
    "notes.rst": (f"Parking\n=======\n\n{GOOD}\n", "<!-- -->\n&nbsp;\n"),
}


def _chunks(project, doc_id):
    return {c.id: c.text for c in project.index.rows() if c.doc_id == doc_id}


@pytest.mark.parametrize("name", [*FORMATS, "scan.pdf"])
def test_no_real_text_is_a_parse_error_in_every_format(tmp_path, name):
    path = tmp_path / name
    if name == "scan.pdf":
        write_minimal_pdf(path, "   ")
    else:
        path.write_text(FORMATS[name][1])
    with pytest.raises(ParseError):
        parse_file(path, path.read_bytes())


def test_files_cut_short_to_no_real_text_keep_their_version_and_are_reported(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, (good, _) in FORMATS.items():
        (docs / name).write_text(good)
    project = Project(load_config_dict(project_config(tmp_path, docs)), show_progress=False)
    assert project.ingest().to_dict()["failures"] == []
    before = {name: _chunks(project, f"docs:{name}") for name in FORMATS}
    assert all(before.values())

    for name, (_, bad) in FORMATS.items():
        (docs / name).write_text(bad)
    report = project.ingest().to_dict()
    assert report["documents"]["changed"] == 0 and report["chunks_deleted"] == 0
    failed = {Path(f["path"]).name: f for f in report["failures"]}
    assert set(failed) == set(FORMATS)
    for name in FORMATS:
        assert failed[name]["kept_previous"] and failed[name]["reason"].endswith("; kept previous version"), name
        assert _chunks(project, f"docs:{name}") == before[name], name
    assert "cut short" in failed["page.html"]["reason"] and "no real text" in failed["notes.md"]["reason"]


class _Pages:
    """A connector built in Python (as `Project.ingest(extra=...)` takes): one page whose text it returns."""

    name = "wiki"

    def __init__(self, text: str) -> None:
        self.text = text

    def scan(self):
        import hashlib

        from framework.ingest.contract import SourceItem
        from framework.records import Document

        digest = hashlib.sha256(self.text.encode()).hexdigest()
        yield SourceItem(doc_id="wiki:parking", uri="https://wiki.example/parking", content_hash=digest,
                         acl=("public",), read=lambda: Document(id="wiki:parking", text=self.text, source="wiki",
                                                                uri="https://wiki.example/parking", title="Parking",
                                                                content_hash=digest, acl=("public",)))


def test_any_connector_whose_document_turns_into_markup_keeps_its_version(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(GOOD)
    project = Project(load_config_dict(project_config(tmp_path, docs)), show_progress=False)
    project.ingest(extra=[_Pages(f"<p>{GOOD}</p>")])
    before = _chunks(project, "wiki:parking")
    assert before
    report = project.ingest(extra=[_Pages("<div>\n  <p></p>\n</div>")]).to_dict()  # a page saved empty
    [entry] = report["failures"]
    assert entry["doc_id"] == "wiki:parking" and entry["kept_previous"] and "no real text" in entry["reason"]
    assert _chunks(project, "wiki:parking") == before
