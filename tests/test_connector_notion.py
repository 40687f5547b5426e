from conftest import project_config
from export_zips import ASSETS, copy_asset, zip_folder

from connectors.notion import NotionConnector
from framework.ingest.contract import LoadFailure, SourceItem
from framework.project import Project, load_config_dict
from framework.records import Principal

FOLDER = ASSETS / "notion"
WIKI = "Northwind Wiki 0f1e2d3c4b5a69788796a5b4c3d2e1f0"
STAFF, HR = Principal(user="sue", groups=("staff",)), Principal(user="hal", groups=("hr",))
# Everything is for staff except the People page, which only HR reads.
SOURCE = {"name": "notion", "type": "notion", "acl": ["hr"],
          "acl_paths": {p: ["staff"] for p in ("Northwind Wiki", "Northwind Wiki/Travel*", "Northwind Wiki/Engineering*",
                                               "Northwind Wiki/Vendors*")}}
BOMB = f"{WIKI}/Huge page 9f8e7d6c5b4a39281706f5e4d3c2b1a0.md"


def _project(tmp_path, path):
    sources = [{**SOURCE, "path": str(path)}]
    return Project(load_config_dict(project_config(tmp_path, FOLDER, sources=sources)), show_progress=False)


def _docs(path):
    items = list(NotionConnector(name="notion", path=path, acl=("staff",)).scan())
    return {i.doc_id: i.read() for i in items if isinstance(i, SourceItem)}, [i for i in items
                                                                              if isinstance(i, LoadFailure)]


def test_pages_keep_titles_and_hierarchy_without_ids():
    docs, fails = _docs(FOLDER)
    assert not fails
    guide = docs["notion:3c4d5e6f708192a3b4c5d6e7f8091011"]
    assert guide.title == "Northwind Wiki / Engineering / Code review guide"
    assert guide.uri == "https://www.notion.so/3c4d5e6f708192a3b4c5d6e7f8091011"
    assert guide.text.startswith("Every pull request needs two approvals")
    home = docs["notion:0f1e2d3c4b5a69788796a5b4c3d2e1f0"]
    assert home.title == "Northwind Wiki" and "Travel policy\nEngineering" in home.text and "%20" not in home.text
    assert not any("0f1e2d3c" in d.title for d in docs.values())


def test_database_rows_become_documents_with_column_lines():
    docs, _ = _docs(FOLDER)
    rows = {d.title.rsplit(" / ", 1)[1]: d for d in docs.values() if d.metadata.get("database")}
    assert set(rows) == {"Brightmop Cleaning", "Bluefin Catering", "Quillstone Printing"}  # _all.csv read once
    bright = rows["Brightmop Cleaning"]
    assert bright.id == "notion:5e6f708192a3b4c5d6e7f80910111213"
    assert bright.text.startswith("Name: Brightmop Cleaning\nCategory: Facilities\nContract ends: 2027-03-31")
    assert bright.text.count("Contact: Olga Brandt") == 1  # the row page's property lines are not repeated
    assert "every weekday evening after 19:00" in bright.text
    quill = rows["Quillstone Printing"]  # a row without a page
    assert quill.id.startswith("notion:4d5e6f708192a3b4c5d6e7f809101112:")
    assert quill.text == "Name: Quillstone Printing\nCategory: Office supplies"
    assert len(docs) == 8  # 5 pages + 3 rows; row pages are not indexed twice


def test_zip_export_with_a_bomb_is_ingested_and_searchable(tmp_path):
    archive = zip_folder(FOLDER, tmp_path / "Export.zip", extra={BOMB: b"\0" * (4 * 1024 * 1024)})
    project = _project(tmp_path, archive)
    report = project.ingest().to_dict()
    assert report["documents"]["new"] == 8 and report["documents"]["failed"] == 1
    failure = report["failures"][0]
    assert failure["uri"].endswith("Export.zip#" + BOMB) and "zip bomb" in failure["reason"]
    hits = project.retrieve("linter called Tidewater", principal=STAFF)
    assert hits[0].doc_id == "notion:3c4d5e6f708192a3b4c5d6e7f8091011"
    hits = project.retrieve("Brightmop cleans the office weekday evening", principal=STAFF)
    assert hits[0].title == "Northwind Wiki / Vendors / Brightmop Cleaning"


def test_restricted_page_stays_hidden_from_outsiders(tmp_path):
    project = _project(tmp_path, FOLDER)
    project.ingest()
    question = "salary bands Band L3 starts"
    assert all("People" not in h.title for h in project.retrieve(question, principal=STAFF, k=10))
    assert project.retrieve(question, principal=Principal()) == []
    assert project.retrieve(question, principal=HR)[0].doc_id == "notion:7a8b9c0d1e2f30415263748596a7b8c9"


def test_ids_stable_across_runs_and_a_changed_row_reindexes_alone(tmp_path):
    folder = copy_asset("notion", tmp_path)
    first = _project(tmp_path / "ws", folder)
    first.ingest()
    ids = first.index.ids()
    again = first.ingest().to_dict()
    assert again["documents"]["unchanged"] == 8 and again["chunks_embedded"] == 0
    assert first.index.ids() == ids
    csv = folder / WIKI / "Vendors 4d5e6f708192a3b4c5d6e7f809101112_all.csv"
    csv.write_text(csv.read_text(encoding="utf-8-sig").replace("2026-12-15", "2027-06-30"), encoding="utf-8")
    report = first.ingest().to_dict()
    assert report["documents"]["changed"] == 1 and report["documents"]["unchanged"] == 7
    hits = first.retrieve("Bluefin Catering contract ends", principal=STAFF)
    assert hits[0].doc_id == "notion:6f708192a3b4c5d6e7f8091011121314" and "2027-06-30" in hits[0].text
