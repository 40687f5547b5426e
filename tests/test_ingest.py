import hashlib
import socket

import pytest
from conftest import project_config

from framework.ingest.ledger import Ledger
from framework.ingest.pipeline import WorkspaceBusyError, workspace_lock
from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.workspace import Workspace


@pytest.fixture(params=["local", "server"])
def backend(request) -> dict:
    """Index settings for embedded Chroma, or for a real `chroma run` server on 127.0.0.1."""
    return {"url": request.getfixturevalue("chroma_server")} if request.param == "server" else {}


def _project(tmp_path, corpus, backend=None, **sections):
    """A project whose collection is named after its workspace, so tests sharing a server never meet."""
    cfg = project_config(tmp_path, corpus, **sections)
    if backend:
        name = "t" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:16]
        cfg["index"] = {**cfg["index"], **backend, "collection": name}
    return Project(load_config_dict(cfg), show_progress=False)


def test_ingest_indexes_every_document_and_search_finds_it(tmp_path, corpus, backend):
    project = _project(tmp_path, corpus, backend)
    report = project.ingest().to_dict()
    assert report["documents"]["new"] == 5 and report["documents"]["failed"] == 0
    assert report["chunks_embedded"] == project.index.count() >= 5
    hits = project.retrieve("VPN client called Tunnelwise", principal=Principal())
    assert hits[0].doc_id == "docs:policies/security.html"
    assert 0 < hits[0].score <= 1


def test_reingest_unchanged_embeds_nothing(tmp_path, corpus, backend):
    project = _project(tmp_path, corpus, backend)
    project.ingest()
    ids = project.index.ids()
    report = project.ingest().to_dict()
    assert report["chunks_embedded"] == 0
    assert report["documents"]["unchanged"] == 5
    assert project.index.ids() == ids


def test_a_new_chunk_size_rechunks_documents_whose_text_did_not_change(tmp_path, corpus):
    _project(tmp_path, corpus).ingest()
    smaller = _project(tmp_path, corpus, index={"chunk_size": 24})
    before = smaller.index.ids()
    report = smaller.ingest().to_dict()
    assert report["documents"]["changed"] == 5 and report["documents"]["unchanged"] == 0
    fresh = _project(tmp_path / "fresh", corpus, index={"chunk_size": 24})
    fresh.ingest()
    assert smaller.index.ids() == fresh.index.ids() and len(fresh.index.ids()) > len(before)
    assert smaller.ingest().to_dict()["documents"]["unchanged"] == 5


def test_changed_and_deleted_documents_replace_and_leave_the_index(tmp_path, corpus, backend):
    project = _project(tmp_path, corpus, backend)
    project.ingest()
    before = project.index.ids()
    (corpus / "handbook.md").write_text("# Employee Handbook\n\nEvery employee receives 30 days of annual leave.\n")
    (corpus / "travel.docx").unlink()
    report = project.ingest().to_dict()
    assert report["documents"]["changed"] == 1 and report["documents"]["deleted"] == 1
    after = project.index.ids()
    assert project.index.count() == len(after)
    texts = " ".join(s.text for s in project.index.get(sorted(after), principal=Principal()))
    assert "30 days" in texts and "28 days" not in texts and "team lead" not in texts
    assert before != after


def test_bad_file_is_reported_and_good_ones_indexed(tmp_path, corpus, backend):
    (corpus / "junk.md").write_bytes(b"\x00\xff" * 100)
    (corpus / "empty.txt").write_bytes(b"")
    report = _project(tmp_path, corpus, backend).ingest().to_dict()
    assert report["documents"]["new"] == 5 and report["documents"]["failed"] == 2
    reasons = {f["uri"].rsplit("/", 1)[1]: f["reason"] for f in report["failures"]}
    assert "binary" in reasons["junk.md"] and "the file is empty (0 bytes)" in reasons["empty.txt"]


def test_acl_hides_documents_from_outsiders(tmp_path, corpus, backend):
    project = _project(tmp_path, corpus, backend, sources=[{"name": "docs", "type": "files", "path": str(corpus),
                                                    "acl": ["finance"]}])
    project.ingest()
    assert project.retrieve("meal limit EUR", principal=Principal(user="eve", groups=("sales",))) == []
    assert project.retrieve("meal limit EUR", principal=Principal()) == []
    hits = project.retrieve("meal limit EUR", principal=Principal(user="fay", groups=("finance",)))
    assert hits and all(h.doc_id.startswith("docs:") for h in hits)
    with pytest.raises(PermissionError):
        project.index.search(project.embedder.embed(["x"])[0], principal=None, k=2)


def test_document_without_acl_is_visible_to_nobody(tmp_path, corpus, backend):
    project = _project(tmp_path, corpus, backend, sources=[{"name": "docs", "type": "files", "path": str(corpus)}])
    project.ingest()
    assert project.retrieve("meal limit", principal=Principal(groups=("finance", "admins"))) == []


def test_second_ingest_on_same_workspace_fails_fast(tmp_path):
    with workspace_lock(Workspace(tmp_path)):
        with pytest.raises(WorkspaceBusyError, match="another ingest is running"):
            with workspace_lock(Workspace(tmp_path)):
                pass


def test_interrupted_write_is_finished_without_duplicates(tmp_path, corpus, backend):
    """A run killed between upsert and commit leaves pending ids; the next run cleans them."""
    clean = _project(tmp_path / "clean", corpus, backend)
    clean.ingest()
    project = _project(tmp_path, corpus, backend)
    project.ingest()
    led = Ledger(project.workspace.ledger)
    led.begin("docs:handbook.md", "docs", "uri", ["orphan-chunk-from-killed-run"])
    led.close()
    project.index.collection.upsert(ids=["orphan-chunk-from-killed-run"], embeddings=[[0.1] * 256],
                                    metadatas=[{"doc_id": "docs:handbook.md", "acl": ["public"]}],
                                    documents=["stale"])
    report = project.ingest().to_dict()
    assert report["documents"]["changed"] == 1 and report["chunks_deleted"] == 1
    assert project.index.ids() == clean.index.ids()


def test_embedder_mismatch_is_refused(tmp_path, corpus, backend):
    project = _project(tmp_path, corpus, backend)
    project.ingest()
    other = _project(tmp_path, corpus, backend, index={"embedder": "hashing:128"})
    with pytest.raises(RuntimeError, match="built with embedder 'hashing-256'"):
        other.index


def test_acl_change_reindexes_and_hides_the_document(tmp_path, corpus, backend):
    public = [{"name": "docs", "type": "files", "path": str(corpus), "public": True}]
    restricted = [{"name": "docs", "type": "files", "path": str(corpus), "acl": ["hr"]}]
    for retrieval in ("dense", "lexical", "hybrid"):
        ws = tmp_path / retrieval
        _project(ws, corpus, backend, sources=public, index={"retrieval": retrieval}).ingest()
        assert _project(ws, corpus, backend, sources=public, index={"retrieval": retrieval}).retrieve(
            "Tunnelwise", principal=Principal())
        project = _project(ws, corpus, backend, sources=restricted, index={"retrieval": retrieval})
        assert project.ingest().to_dict()["documents"]["changed"] == 5
        assert project.retrieve("Tunnelwise", principal=Principal()) == []
        assert project.retrieve("Tunnelwise", principal=Principal(groups=("hr",)))


def test_removed_source_leaves_the_index(tmp_path, corpus, backend):
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.md").write_text("The Zanzibar room is on the third floor.")
    both = [{"name": "docs", "type": "files", "path": str(corpus), "public": True},
            {"name": "extra", "type": "files", "path": str(other), "public": True}]
    _project(tmp_path, corpus, backend, sources=both).ingest()
    project = _project(tmp_path, corpus, backend, sources=both[:1])
    report = project.ingest().to_dict()
    assert report["documents"]["deleted"] == 1
    assert all(h.doc_id != "extra:note.md" for h in project.retrieve("Zanzibar room", principal=Principal(), k=10))


def test_lexical_index_follows_deletes_in_the_workspace(tmp_path, corpus, backend):
    """The BM25 index lives in the workspace in both modes and drops what the vector index drops."""
    project = _project(tmp_path, corpus, backend, index={"retrieval": "lexical"})
    project.ingest()
    assert project.workspace.chroma.exists() == (not backend)
    assert (project.workspace.lexical(project.config.index.collection) / "chunks.json").is_file()
    assert any(h.doc_id == "docs:travel.docx" for h in project.retrieve("team lead approval", principal=Principal()))
    (corpus / "travel.docx").unlink()
    project.ingest()
    again = _project(tmp_path, corpus, backend, index={"retrieval": "lexical"})  # a fresh process's view
    for p in (project, again):
        assert all(h.doc_id != "docs:travel.docx" for h in p.retrieve("team lead approval", principal=Principal()))


def test_unreachable_server_is_a_clear_error(tmp_path, corpus):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    project = _project(tmp_path, corpus, {"url": f"http://127.0.0.1:{port}"})
    with pytest.raises(RuntimeError, match=f"index.url: no Chroma server answers at http://127.0.0.1:{port}"):
        project.ingest()
