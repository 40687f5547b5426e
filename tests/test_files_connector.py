import os

from connectors.files import FilesConnector
from framework.ingest.contract import LoadFailure, SourceItem


def _scan(root, **kw):
    items = list(FilesConnector(name="docs", root=root, acl=("public",), **kw).scan())
    docs = {i.doc_id: i.read() for i in items if isinstance(i, SourceItem)}
    fails = [i for i in items if isinstance(i, LoadFailure)]
    return docs, fails


def test_reads_every_supported_format(corpus):
    docs, fails = _scan(corpus)
    assert not fails
    assert set(docs) == {"docs:handbook.md", "docs:policies/expenses.txt", "docs:policies/security.html",
                         "docs:product.pdf", "docs:travel.docx"}
    assert docs["docs:handbook.md"].title == "Employee Handbook"
    assert "28 days of annual leave" in docs["docs:handbook.md"].text
    sec = docs["docs:policies/security.html"]
    assert sec.title == "Security policy" and "Tunnelwise" in sec.text and "var x" not in sec.text
    assert "9 EUR per month" in docs["docs:product.pdf"].text
    assert "approval from the team lead" in docs["docs:travel.docx"].text
    assert all(d.acl == ("public",) and len(d.content_hash) == 64 for d in docs.values())


def test_ids_and_hashes_are_stable(corpus):
    first, _ = _scan(corpus)
    second, _ = _scan(corpus)
    assert {k: v.content_hash for k, v in first.items()} == {k: v.content_hash for k, v in second.items()}


def test_bad_files_are_reported_not_fatal(corpus, tmp_path):
    (corpus / "empty.md").write_bytes(b"")
    (corpus / "junk.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "big.txt").write_text("word " * 5000)
    (corpus / "latin1.txt").write_bytes(("Le caf\xe9 du personnel sert une cr\xe8me br\xfbl\xe9e le vendredi. "
                                         "Les employ\xe9s re\xe7oivent un caf\xe9 gratuit \xe0 l'arriv\xe9e. "
                                         "La r\xe9union g\xe9n\xe9rale a lieu chaque lundi \xe0 10 heures. ")
                                        .encode("latin-1"))
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    os.symlink(outside, corpus / "link.txt")
    items = list(FilesConnector(name="docs", root=corpus, acl=("public",), max_bytes=20_000).scan())
    fails = {i.uri.rsplit("/", 1)[1]: i.reason for i in items if isinstance(i, LoadFailure)}
    ids = {i.uri.rsplit("/", 1)[1]: i.doc_id for i in items if isinstance(i, LoadFailure)}
    assert fails["empty.md"].startswith("the file is empty (0 bytes)") and ids["empty.md"] == "docs:empty.md"
    assert "max_file_mb" in fails["big.txt"]
    assert "outside the source folder" in fails["link.txt"]
    read_errors = {}
    for i in items:
        if isinstance(i, SourceItem):
            try:
                i.read()
            except Exception as err:  # the ingest turns these into report entries
                read_errors[i.doc_id] = str(err)
    assert "binary" in read_errors["docs:junk.txt"]
    assert "not a readable PDF" in read_errors["docs:broken.pdf"]
    latin = next(i for i in items if isinstance(i, SourceItem) and i.doc_id == "docs:latin1.txt").read()
    assert "crème brûlée" in latin.text and "employés reçoivent" in latin.text


def test_include_and_exclude_globs(corpus):
    docs, _ = _scan(corpus, include=("**/*.txt", "**/*.md"), exclude=("policies/*",))
    assert set(docs) == {"docs:handbook.md"}


def test_acl_paths_add_groups_per_path(corpus):
    from framework.ingest.acl import AclPolicy

    policy = AclPolicy(groups=("staff",), by_path=(("policies/*", ("security",)),))
    items = [i for i in FilesConnector(name="docs", root=corpus, acl=policy).scan() if isinstance(i, SourceItem)]
    acl = {i.doc_id: i.acl for i in items}
    assert acl["docs:policies/security.html"] == ("security", "staff")
    assert acl["docs:handbook.md"] == ("staff",)
    assert all(i.read().acl == i.acl for i in items)


def test_acl_paths_from_config_reach_the_index(tmp_path, corpus):
    from connectors import build_connector
    from framework.project import load_config_dict

    cfg = load_config_dict({"sources": [{"name": "docs", "type": "files", "path": str(corpus),
                                         "acl_paths": {"*.pdf": ["sales"]}}]})
    items = [i for i in build_connector(cfg.sources[0]).scan() if isinstance(i, SourceItem)]
    acl = {i.doc_id: i.acl for i in items}
    assert acl["docs:product.pdf"] == ("sales",)
    assert acl["docs:handbook.md"] == ()  # no groups at all: visible to nobody
