import json

import pytest
from conftest import project_config
from export_zips import ASSETS, copy_asset, zip_folder

from connectors.slack import SlackConnector
from framework.config import ConfigError
from framework.ingest.contract import LoadFailure, SourceItem
from framework.project import Project, load_config_dict
from framework.records import Principal

FOLDER = ASSETS / "slack"
STAFF, BOARD = Principal(user="ann", groups=("staff",)), Principal(user="lena", groups=("slack:board-prep",))
THREAD = "slack:C02DEPLOYS:1791194400.000100"


def _project(tmp_path, path, **source):
    sources = [{"name": "slack", "type": "slack", "path": str(path), "acl": ["staff"], **source}]
    return Project(load_config_dict(project_config(tmp_path, FOLDER, sources=sources)), show_progress=False)


def _scan(path, **kw):
    items = list(SlackConnector(name="slack", path=path, acl=("staff",), **kw).scan())
    return ({i.doc_id: i for i in items if isinstance(i, SourceItem)},
            {i.uri.rsplit("/", 2)[-2] + "/" + i.uri.rsplit("/", 1)[1]: i.reason for i in items
             if isinstance(i, LoadFailure)})


def test_threads_and_conversations_with_names_resolved():
    items, fails = _scan(FOLDER)
    assert "malformed JSON" in fails["random/2026-10-09.json"]
    thread = items[THREAD].read()
    assert thread.text.splitlines() == [
        "[2026-10-05 10:00] Jonas Weber: Shipwright 4.2 is rolling out to production now. Canary looks healthy.",
        "[2026-10-05 10:07] Amara Okafor: Did the database migration for invoices run before the rollout?",
        "[2026-10-05 10:20] Jonas Weber: Yes, the invoices migration finished at 09:50; the rollback window is 2 hours.",
    ]
    assert thread.title.startswith("#deploys thread 2026-10-05: Shipwright 4.2")
    assert thread.uri == "slack://deploys/p1791194400000100"
    assert thread.updated_at == "2026-10-05T10:20:00+00:00" and thread.metadata["author"] == "Jonas Weber"
    general = items["slack:C01GENERAL:1791190800.000100"].read()  # two messages 4 minutes apart; the join is dropped
    assert "Lena Sato: Thanks @Amara Okafor! Lunch vouchers" in general.text and "has joined" not in general.text
    assert general.metadata["participants"] == "Amara Okafor, Lena Sato"
    link = items["slack:C01GENERAL:1791273600.000100"].read()
    assert "all-hands deck (https://drive.example.com/allhands)" in link.text
    assert len(items) == 7


def test_gap_and_workspace_url_options():
    items, _ = _scan(FOLDER, gap_minutes=600, workspace_url="https://harbor.slack.com")
    merged = items["slack:C01GENERAL:1791190800.000100"].read()
    assert merged.metadata["messages"] == "3" and "Lantern room" in merged.text  # 09:00, 09:04, 16:30 together
    assert items[THREAD].uri == "https://harbor.slack.com/archives/C02DEPLOYS/p1791194400000100"


def test_private_channels_carry_their_own_group_never_the_sources(tmp_path):
    items, _ = _scan(FOLDER)
    board = items["slack:G01BOARD:1791381600.000100"]
    assert board.acl == ("slack:board-prep",)
    assert board.read().metadata["members"] == "Lena Sato, Amara Okafor"  # to map onto the slack:board-prep group
    assert items[THREAD].acl == ("staff",)
    assert not any(k.startswith("slack:G01BOARD") for k in _scan(FOLDER, include_private=False)[0])
    # Even a public source keeps private channels private.
    project = _project(tmp_path, FOLDER, acl=[], public=True)
    project.ingest()
    question = "Otterbay acquisition board pack revenue"
    for outsider in (Principal(), STAFF):
        assert all(not h.doc_id.startswith("slack:G01BOARD") for h in project.retrieve(question, principal=outsider, k=10))
    assert project.retrieve(question, principal=BOARD)[0].doc_id == "slack:G01BOARD:1791381600.000100"


def test_zip_ingest_reports_bad_files_and_finds_good_ones(tmp_path):
    folder = copy_asset("slack", tmp_path)
    (folder / "secret-ops").mkdir()
    (folder / "secret-ops" / "2026-10-10.json").write_text(json.dumps([{"user": "U01AMARA", "text": "x",
                                                                         "ts": "1791640000.000100"}]))
    (folder / "general" / "2026-10-11.json").write_text(json.dumps([{"user": "U02JONAS", "text": "no ts"}]))
    project = _project(tmp_path, zip_folder(folder, tmp_path / "Harbor Slack export.zip"))
    report = project.ingest().to_dict()
    assert report["documents"]["new"] == 7 and report["documents"]["failed"] == 3
    reasons = {f["uri"].split("#", 1)[1]: f["reason"] for f in report["failures"]}
    assert "malformed JSON" in reasons["random/2026-10-09.json"]
    assert "visibility is unknown" in reasons["secret-ops"]
    assert "without a valid ts" in reasons["general/2026-10-11.json"]
    hits = project.retrieve("invoices migration rollback window", principal=STAFF)
    assert hits[0].doc_id == THREAD
    assert all(not h.doc_id.startswith("slack:G01BOARD")
               for h in project.retrieve("Otterbay acquisition", principal=STAFF, k=10))


def test_ids_stable_across_runs_and_forms(tmp_path):
    folder_run = _project(tmp_path / "a", FOLDER)
    folder_run.ingest()
    zipped = _project(tmp_path / "b", zip_folder(FOLDER, tmp_path / "export.zip"))
    zipped.ingest()
    assert folder_run.index.ids() == zipped.index.ids()
    again = zipped.ingest().to_dict()
    assert again["documents"]["unchanged"] == 7 and again["chunks_embedded"] == 0


def test_bad_workspace_url_is_a_config_error():
    with pytest.raises(ConfigError, match="workspace_url"):
        load_config_dict({"sources": [{"name": "s", "type": "slack", "path": ".", "workspace_url": "harbor"}]})


def test_odd_json_shapes_are_reported_not_fatal(tmp_path):
    folder = copy_asset("slack", tmp_path)
    (folder / "general" / "2026-10-12.json").write_text(json.dumps({"messages": []}))
    (folder / "general" / "2026-10-13.json").write_text(json.dumps([
        "not a message", {"user": "U02JONAS", "text": {"rich": True}, "ts": "1791900000.000100"},
        {"user": "U02JONAS", "text": "bad thread", "ts": "1791900100.000100", "thread_ts": "soon"},
        {"user": ["U02JONAS"], "text": "The parking garage closes at 22:00.", "ts": "1791900200.000100"}]))
    (folder / "users.json").write_text("{}")
    items, fails = _scan(folder)
    assert "a list was expected, found dict" in fails["general/2026-10-12.json"]
    assert "3 messages without a valid ts, thread_ts or text" in fails["general/2026-10-13.json"]
    assert "a list was expected" in fails["slack/users.json"]
    garage = items["slack:C01GENERAL:1791900200.000100"].read()
    assert garage.text.endswith("unknown: The parking garage closes at 22:00.")
    assert "U02JONAS: Shipwright 4.2" in items[THREAD].read().text  # no users.json: ids stay
