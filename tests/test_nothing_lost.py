"""A document that still exists but fails to read keeps its last indexed version until it reads again.

A half-written save, a sync glitch or a damaged export must not delete what was indexed: the
failure carries the document's id (or, for an entry that holds several documents, an id prefix),
the index keeps its chunks, and the report says `kept previous version`.
"""

import os

import pytest
from conftest import project_config, write_minimal_pdf
from export_zips import ASSETS, copy_asset

from connectors.confluence import ConfluenceConnector
from connectors.notion import NotionConnector
from connectors.slack import SlackConnector
from framework.ingest.contract import LoadFailure, SourceItem
from framework.project import Project, load_config_dict
from framework.records import Principal


def _chunks(project, doc_id):
    return {c.id: c.text for c in project.index.rows() if c.doc_id == doc_id}


def _entry(report, name):
    [entry] = [f for f in report["failures"] if f["path"].endswith(name)]
    return entry


def test_a_file_that_turns_bad_keeps_its_last_good_version(tmp_path, corpus):
    pdf, notes = corpus / "product.pdf", corpus / "notes.md"
    notes.write_text("# Notes\n\nThe parking garage closes at 22:00 on weekdays.\n")
    project = Project(load_config_dict(project_config(tmp_path, corpus)), show_progress=False)
    project.ingest()
    good = {d: _chunks(project, d) for d in ("docs:product.pdf", "docs:notes.md")}
    assert all(good.values())

    pdf.write_bytes(b"")  # a save cut short
    notes.write_bytes(b"\x00\x01\x02" * 50)  # overwritten with junk
    for step in ("emptied", "corrupted"):
        report = project.ingest().to_dict()
        assert report["documents"]["deleted"] == 0 and report["chunks_deleted"] == 0, step
        for name, doc_id in (("product.pdf", "docs:product.pdf"), ("notes.md", "docs:notes.md")):
            entry = _entry(report, name)
            assert entry["kept_previous"] and entry["reason"].endswith("; kept previous version"), step
            assert entry["reason"].count(name) == 1 and entry["doc_id"] == doc_id
            assert _chunks(project, doc_id) == good[doc_id], (step, name)
        hits = project.retrieve("Crumb plan costs", principal=Principal())
        assert any(h.doc_id == "docs:product.pdf" for h in hits)
        pdf.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n")  # now truncated, corrupt

    write_minimal_pdf(pdf, "The Crumb plan costs 12 EUR per month.")  # restored, with a new price
    notes.write_text("# Notes\n\nThe parking garage closes at 22:00 on weekdays.\n")  # restored as it was
    report = project.ingest().to_dict()
    assert report["failures"] == [] and report["documents"]["changed"] == 1
    assert report["documents"]["unchanged"] == 5  # notes.md is back to its indexed version
    texts = " ".join(_chunks(project, "docs:product.pdf").values())
    assert "12 EUR" in texts and "9 EUR" not in texts
    assert _chunks(project, "docs:notes.md") == good["docs:notes.md"]

    pdf.unlink()  # deleted: now it goes
    report = project.ingest().to_dict()
    assert report["documents"]["deleted"] == 1 and not _chunks(project, "docs:product.pdf")


def test_a_new_file_that_is_bad_says_nothing_was_kept(tmp_path, corpus):
    (corpus / "draft.md").write_bytes(b"")
    report = Project(load_config_dict(project_config(tmp_path, corpus)), show_progress=False).ingest().to_dict()
    entry = _entry(report, "draft.md")
    assert not entry["kept_previous"] and "kept" not in entry["reason"]
    assert entry["reason"] == f"{corpus / 'draft.md'}: the file is empty (0 bytes); if a save or sync was cut " \
                              "short, save it again, else delete it"


EXPORTS = {"confluence": ConfluenceConnector, "notion": NotionConnector, "slack": SlackConnector}
ENTRIES = [(kind, str(path.relative_to(ASSETS / kind))) for kind in EXPORTS
           for path in sorted((ASSETS / kind).rglob("*")) if path.is_file()]


def _accounted(items, before: set[str]) -> set[str]:
    """The document ids a scan keeps: listed, named by a failure, or under a failure's prefix."""
    listed = {i.doc_id for i in items if isinstance(i, SourceItem)}
    named = {i.doc_id for i in items if isinstance(i, LoadFailure) and i.doc_id}
    prefixes = [i.keep_prefix for i in items if isinstance(i, LoadFailure) and i.keep_prefix]
    return listed | named | {d for d in before if any(d.startswith(p) for p in prefixes)}


@pytest.mark.parametrize("kind, entry", ENTRIES, ids=[f"{k}:{e.rsplit('/', 1)[-1][:24]}" for k, e in ENTRIES])
def test_a_refused_export_entry_keeps_the_documents_it_holds(tmp_path, kind, entry):
    """Each entry of each export in turn becomes unreadable (a symbolic link, which is never followed):
    every document of the intact export is still listed or kept by a failure."""
    folder = copy_asset(kind, tmp_path)
    before = {i.doc_id for i in EXPORTS[kind](name="src", path=folder, acl=("staff",)).scan()
              if isinstance(i, SourceItem)}
    target = folder / entry
    target.unlink()
    os.symlink(tmp_path / "elsewhere", target)
    items = list(EXPORTS[kind](name="src", path=folder, acl=("staff",)).scan())
    assert before <= _accounted(items, before), before - _accounted(items, before)


def _slack(tmp_path, folder, acl=("staff",)):
    """A project over the Slack export in `folder`, ingested; (project, indexed doc ids, the #deploys ones)."""
    sources = [{"name": "slack", "type": "slack", "path": str(folder), "acl": list(acl)}]
    project = Project(load_config_dict(project_config(tmp_path, folder, sources=sources)), show_progress=False)
    project.ingest()
    indexed = {c.doc_id for c in project.index.rows()}
    deploys = {d for d in indexed if d.startswith("slack:C02DEPLOYS:")}
    assert deploys
    return project, indexed, deploys


def test_a_damaged_slack_export_keeps_its_conversations(tmp_path):
    folder = copy_asset("slack", tmp_path)
    project, indexed, deploys = _slack(tmp_path, folder)
    (folder / "deploys" / "2026-10-05.json").write_text("[{\"ts\": ")  # a day file cut short
    report = project.ingest().to_dict()
    assert report["documents"]["deleted"] == 0 and {c.doc_id for c in project.index.rows()} == indexed
    entry = _entry(report, "2026-10-05.json")
    assert entry["kept_previous"] and f"kept {len(deploys)} previously indexed" in entry["reason"]
    (folder / "channels.json").write_text("{oops")  # the channel list: which channels exist is unknown
    report = project.ingest().to_dict()
    assert report["documents"]["deleted"] == 0 and {c.doc_id for c in project.index.rows()} == indexed
    assert _entry(report, "channels.json")["kept_previous"]


def _acls(project, doc_id):
    return {tuple(c.acl) for c in project.index.rows() if c.doc_id == doc_id}


def test_a_kept_document_takes_the_narrower_acl_the_config_gives_it_now(tmp_path, corpus):
    """Narrowing who may read a file while the file is unreadable narrows its kept chunks too."""
    (corpus / "hr").mkdir()
    (corpus / "hr" / "pay.md").write_text("# Pay\n\nSalaries are reviewed every March by the pay board.\n")
    wide = [{"name": "docs", "type": "files", "path": str(corpus), "acl": ["staff"], "acl_paths": {"hr/*": ["hr"]}}]
    project = Project(load_config_dict(project_config(tmp_path, corpus, sources=wide)), show_progress=False)
    project.ingest()
    assert _acls(project, "docs:hr/pay.md") == {("hr", "staff")}
    staff = Principal(user="sam", groups=["staff"])
    assert any(h.doc_id == "docs:hr/pay.md" for h in project.retrieve("pay board salaries", principal=staff, k=10))

    (corpus / "hr" / "pay.md").write_bytes(b"")  # unreadable while the config narrows it to hr alone
    narrow = [{**wide[0], "acl": ["hr"], "acl_paths": {}}]
    project = Project(load_config_dict(project_config(tmp_path, corpus, sources=narrow)), show_progress=False)
    report = project.ingest().to_dict()
    entry = _entry(report, "pay.md")
    assert entry["kept_previous"] and entry["reason"].endswith("under the ACL the config gives it now: hr")
    assert _acls(project, "docs:hr/pay.md") == {("hr",)}
    assert not any(h.doc_id == "docs:hr/pay.md" for h in project.retrieve("pay board salaries", principal=staff, k=10))
    hr = Principal(user="ana", groups=["hr"])
    assert any(h.doc_id == "docs:hr/pay.md" for h in project.retrieve("pay board salaries", principal=hr, k=10))
    report = project.ingest().to_dict()  # the next run finds the ledger already at the narrowed ACL
    assert _entry(report, "pay.md")["reason"].endswith("; kept previous version")


def test_documents_a_failure_hides_leave_the_index_when_the_acl_config_changed(tmp_path):
    """A damaged day file hides conversations whose ACL cannot be told; after an ACL change they go until it reads."""
    folder = copy_asset("slack", tmp_path)
    _, indexed, deploys = _slack(tmp_path, folder)
    day = folder / "deploys" / "2026-10-05.json"
    good = day.read_bytes()
    day.write_text("[{\"ts\": ")
    sources = [{"name": "slack", "type": "slack", "path": str(folder), "acl": ["ops"]}]
    project = Project(load_config_dict(project_config(tmp_path, folder, sources=sources)), show_progress=False)
    report = project.ingest().to_dict()
    entry = _entry(report, "2026-10-05.json")
    assert not entry["kept_previous"] and "ACL config changed" in entry["reason"]
    assert report["documents"]["deleted"] == 0
    assert {c.doc_id for c in project.index.rows()} == indexed - deploys
    assert not any("staff" in c.acl for c in project.index.rows())  # nothing kept under the old groups
    day.write_bytes(good)
    project.ingest()
    assert {c.doc_id for c in project.index.rows()} == indexed
