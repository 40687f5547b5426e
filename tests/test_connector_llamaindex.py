import pytest
from conftest import project_config
from llama_index.core import Document as LlamaDocument
from llama_index.core import SimpleDirectoryReader
from llama_index.core.readers.base import BaseReader

from connectors.llamaindex_reader import LlamaIndexReaderConnector, ReaderError, import_reader
from framework.config import ConfigError
from framework.ingest.contract import LoadFailure
from framework.project import Project, load_config_dict
from framework.records import Principal


@pytest.fixture
def notes(tmp_path):
    root = tmp_path / "notes"
    root.mkdir()
    (root / "garden.md").write_text("# Roof garden\n\nThe roof garden opens at 07:30 and the beehives are called "
                                    "the Quince colony.\n")
    (root / "canteen.txt").write_text("The canteen serves barley soup on Wednesdays. Lunch costs 6 EUR.\n")
    return root


class TicketReader(BaseReader):
    """A stand-in for a LlamaHub reader that carries permissions and stable ids of its own."""

    def __init__(self, tickets):
        self.tickets = tickets

    def load_data(self, status="open"):
        return [LlamaDocument(id_=f"T-{n}", text=text, metadata={"title": f"Ticket {n}", "groups": groups,
                                                                  "url": f"https://desk.example.com/T-{n}"})
                for n, text, groups, s in self.tickets if s == status]


def _items(conn):
    return list(conn.scan())


def test_simple_directory_reader_with_id_key(notes):
    conn = LlamaIndexReaderConnector(name="notes", reader=SimpleDirectoryReader(input_dir=str(notes)),
                                     id_key="file_name", acl=("staff",))
    docs = {i.doc_id: i.read() for i in _items(conn)}
    assert set(docs) == {"notes:garden.md", "notes:canteen.txt"}
    garden = docs["notes:garden.md"]
    assert "Quince colony" in garden.text and garden.title == "garden.md"
    assert garden.uri == (notes / "garden.md").as_uri() and garden.acl == ("staff",)
    assert garden.updated_at and garden.metadata["reader"] == "SimpleDirectoryReader"


def test_random_reader_ids_become_content_ids_stable_across_runs(notes, caplog):
    def ids():
        conn = LlamaIndexReaderConnector(name="notes", reader=SimpleDirectoryReader(input_dir=str(notes)))
        return sorted(i.doc_id for i in _items(conn))

    first = ids()
    assert first == ids() and len(first) == 2
    assert "random ids" in caplog.text


def test_reader_ids_and_carried_groups(notes):
    reader = TicketReader([(1, "The printer on floor 3 jams on A3 paper.", "it, facilities", "open"),
                           (2, "Closed ticket text.", "it", "closed")])
    conn = LlamaIndexReaderConnector(name="desk", reader=reader, load_args={"status": "open"}, acl_key="groups")
    items = _items(conn)
    assert [i.doc_id for i in items] == ["desk:T-1"]
    doc = items[0].read()
    assert doc.acl == ("facilities", "it") and doc.uri == "https://desk.example.com/T-1" and doc.title == "Ticket 1"


def test_missing_id_key_and_empty_text_are_reported():
    reader = TicketReader([(1, "   ", "it", "open"), (2, "Some text.", "it", "open")])
    items = _items(LlamaIndexReaderConnector(name="desk", reader=reader))
    failures = [i for i in items if isinstance(i, LoadFailure)]
    assert [(f.reason, f.doc_id) for f in failures] == [
        ("TicketReader returned the document without text; check the reader's source for it", "desk:T-1")]
    items = _items(LlamaIndexReaderConnector(name="desk", reader=reader, id_key="ticket_no"))
    assert all(isinstance(i, LoadFailure) and "no metadata key 'ticket_no'" in i.reason for i in items)


def test_failing_reader_raises_naming_the_source():
    class Broken(BaseReader):
        def load_data(self):
            raise ConnectionError("service unavailable")

    with pytest.raises(ReaderError, match="sources.desk: Broken.load_data failed: ConnectionError"):
        _items(LlamaIndexReaderConnector(name="desk", reader=Broken()))


def test_import_reader_accepts_only_llama_index_readers(notes):
    reader = import_reader("llama_index.core:SimpleDirectoryReader", {"input_dir": str(notes)}, source="n")
    assert isinstance(reader, SimpleDirectoryReader)
    with pytest.raises(ReaderError, match="not a LlamaIndex reader class"):
        import_reader("llama_index.core:VectorStoreIndex", {}, source="n")
    with pytest.raises(ReaderError, match="cannot import llama_index.readers.nonexistent"):
        import_reader("llama_index.readers.nonexistent:Reader", {}, source="n")
    with pytest.raises(ReaderError, match="reader_args: SimpleDirectoryReader refused them"):
        import_reader("llama_index.core:SimpleDirectoryReader", {"input_dirr": "x"}, source="n")
    with pytest.raises(ConfigError, match="must name a reader class as 'llama_index.<module>:<Class>'"):
        load_config_dict({"sources": [{"name": "n", "type": "llamaindex", "reader": "os:system"}]})


def test_yaml_source_ingests_queries_and_reingests(tmp_path, notes):
    source = {"name": "notes", "type": "llamaindex", "reader": "llama_index.core:SimpleDirectoryReader",
              "reader_args": {"input_dir": str(notes)}, "id_key": "file_name", "acl": ["staff"]}
    project = Project(load_config_dict(project_config(tmp_path, notes, sources=[source])), show_progress=False)
    assert project.ingest().to_dict()["documents"]["new"] == 2
    staff = Principal(groups=("staff",))
    assert project.retrieve("what are the beehives called", principal=staff)[0].doc_id == "notes:garden.md"
    assert project.retrieve("beehives", principal=Principal(groups=("guests",))) == []
    ids = project.index.ids()
    assert project.ingest().to_dict()["documents"]["unchanged"] == 2 and project.index.ids() == ids

    (notes / "canteen.txt").write_text("The canteen serves lentil stew on Wednesdays. Lunch costs 7 EUR.\n")
    (notes / "garden.md").unlink()
    report = project.ingest().to_dict()
    assert report["documents"] == {"new": 0, "changed": 1, "unchanged": 0, "deleted": 1, "failed": 0}
    texts = " ".join(s.text for s in project.index.get(sorted(project.index.ids()), principal=staff))
    assert "lentil stew" in texts and "barley" not in texts and "Quince" not in texts


def test_python_built_connector_through_project(tmp_path, notes):
    reader = TicketReader([(7, "Badge printers are in the lobby next to the Sundial desk.", "it", "open")])
    conn = LlamaIndexReaderConnector(name="desk", reader=reader, acl_key="groups")
    files = {"name": "docs", "type": "files", "path": str(notes), "public": True}
    project = Project(load_config_dict(project_config(tmp_path, notes, sources=[files])), show_progress=False)
    assert project.ingest(extra=[conn]).to_dict()["documents"]["new"] == 3
    hits = project.retrieve("where are badge printers", principal=Principal(groups=("it",)))
    assert hits[0].doc_id == "desk:T-7"
    with pytest.raises(ValueError, match="source names must be unique"):
        project.ingest(extra=[LlamaIndexReaderConnector(name="docs", reader=reader)])
