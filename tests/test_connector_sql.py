import datetime as dt

import pytest
import sqlalchemy as sa
from conftest import project_config
from postgres_server import NoPostgres, postgres_server

from connectors.sql import SqlConnector, SqlSourceError
from framework.config import ConfigError
from framework.ingest.contract import LoadFailure, SourceItem
from framework.project import Project, load_config_dict
from framework.records import Principal

ARTICLES = [
    {"id": 101, "title": "Resetting a badge", "body": "Lost badges are replaced at the Kestrel desk on floor 2.",
     "updated": dt.datetime(2026, 3, 1, 9, 30), "author": "Priya Nair", "groups": "support"},
    {"id": 102, "title": "Parking permits", "body": "Parking permits cost 12 EUR per month and renew in January.",
     "updated": dt.datetime(2026, 4, 2, 10, 0), "author": "Jon Park", "groups": "support, facilities"},
    {"id": 103, "title": "Relocation bonus", "body": "The relocation bonus is 3000 EUR, paid with the first salary.",
     "updated": dt.datetime(2026, 5, 3, 11, 0), "author": None, "groups": "hr"},
]
TEMPLATE = "{title}\n\n{body}\n\nWritten by {author}."


def create_articles(url: str, rows=ARTICLES) -> None:
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    table = sa.Table("articles", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.Text),
                     sa.Column("body", sa.Text), sa.Column("updated", sa.DateTime), sa.Column("author", sa.Text),
                     sa.Column("groups", sa.Text))
    meta.drop_all(engine)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()


def execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.sqlite'}"
    create_articles(url)
    return url


@pytest.fixture(scope="module")
def postgres_url():
    try:
        with postgres_server() as url:
            yield url
    except NoPostgres as err:
        pytest.skip(str(err))


def _connector(url, **kw):
    opts = dict(name="kb", url=url, table="articles", id_column="id", text_template=TEMPLATE, title_column="title",
                updated_at_column="updated", author_column="author", acl_column="groups")
    return SqlConnector(**{**opts, **kw})


def _docs(conn):
    return {i.doc_id: i.read() for i in conn.scan() if isinstance(i, SourceItem)}


def test_rows_become_documents_with_metadata_and_carried_acl(sqlite_url):
    docs = _docs(_connector(sqlite_url, acl=("staff",)))
    assert set(docs) == {"kb:101", "kb:102", "kb:103"}
    badge = docs["kb:101"]
    assert badge.title == "Resetting a badge" and badge.updated_at == "2026-03-01T09:30:00"
    assert badge.text == "Resetting a badge\n\nLost badges are replaced at the Kestrel desk on floor 2.\n\n" \
                         "Written by Priya Nair."
    assert badge.metadata["author"] == "Priya Nair" and badge.uri.endswith("kb.sqlite#articles/101")
    assert docs["kb:102"].acl == ("facilities", "staff", "support")
    assert docs["kb:103"].text.endswith("Written by .")  # NULL renders empty
    assert docs["kb:103"].acl == ("hr", "staff")
    assert _docs(_connector(sqlite_url, acl=("staff",)))["kb:101"].content_hash == badge.content_hash


def test_query_mode_and_acl_paths(sqlite_url):
    from framework.ingest.acl import AclPolicy

    conn = _connector(sqlite_url, table=None, acl_column=None, updated_at_column=None, author_column=None,
                      query="SELECT id, title, body, 'kb team' AS author FROM articles WHERE id < 103",
                      acl=AclPolicy(groups=("staff",), by_path=(("102", ("facilities",)),)))
    docs = _docs(conn)
    assert set(docs) == {"kb:101", "kb:102"}
    assert docs["kb:102"].acl == ("facilities", "staff") and docs["kb:101"].acl == ("staff",)
    assert docs["kb:101"].metadata["query"].startswith("SELECT")


def test_missing_column_and_table_are_named(sqlite_url):
    with pytest.raises(SqlSourceError, match=r"text_template: column 'summary' is not in the result; it has: id, "):
        list(_connector(sqlite_url, text_template="{title}: {summary}").scan())
    with pytest.raises(SqlSourceError, match=r"sources.kb.acl_column: column 'readers'"):
        list(_connector(sqlite_url, acl_column="readers").scan())
    with pytest.raises(SqlSourceError, match=r"no table 'artcles'; the database has: articles"):
        list(_connector(sqlite_url, table="artcles").scan())
    with pytest.raises(SqlSourceError, match="reading sqlite"):
        list(_connector(sqlite_url, table=None, query="SELEC id FROM articles").scan())


def test_null_and_duplicate_ids_are_reported(sqlite_url):
    conn = _connector(sqlite_url, table=None, query="SELECT * FROM articles UNION ALL "
                                                    "SELECT NULL, 'x', 'y', NULL, NULL, NULL UNION ALL "
                                                    "SELECT 101, 'copy', 'copy', NULL, NULL, NULL")
    items = list(conn.scan())
    failures = [i.reason for i in items if isinstance(i, LoadFailure)]
    assert any("NULL in id column 'id'" in r for r in failures)
    assert any("duplicate id '101'" in r for r in failures)
    assert sum(isinstance(i, SourceItem) for i in items) == 3


def test_config_requires_query_or_table_and_a_valid_template():
    base = {"name": "kb", "type": "sql", "url": "sqlite://", "id_column": "id", "text_template": "{body}"}
    with pytest.raises(ConfigError, match="exactly one of `query`"):
        load_config_dict({"sources": [base]})
    with pytest.raises(ConfigError, match="not a valid str.format template"):
        load_config_dict({"sources": [{**base, "table": "t", "text_template": "{body"}]})
    assert load_config_dict({"sources": [{**base, "table": "t"}]}).sources[0].table == "t"


def _ingest_and_update(tmp_path, url):
    source = {"name": "kb", "type": "sql", "url": url, "table": "articles", "id_column": "id",
              "text_template": TEMPLATE, "title_column": "title", "updated_at_column": "updated",
              "acl_column": "groups"}
    project = Project(load_config_dict(project_config(tmp_path, tmp_path, sources=[source])), show_progress=False)
    report = project.ingest().to_dict()
    assert report["documents"]["new"] == 3 and report["documents"]["failed"] == 0
    support = Principal(user="sam", groups=("support",))
    hits = project.retrieve("where are lost badges replaced", principal=support)
    assert hits[0].doc_id == "kb:101" and "Kestrel desk" in hits[0].text
    assert all(h.doc_id != "kb:103" for h in project.retrieve("relocation bonus EUR", principal=support))
    assert project.retrieve("relocation bonus", principal=Principal(groups=("hr",)))[0].doc_id == "kb:103"
    ids = project.index.ids()
    assert project.ingest().to_dict()["documents"]["unchanged"] == 3 and project.index.ids() == ids

    execute(url, "UPDATE articles SET body = 'Parking permits cost 15 EUR per month.' WHERE id = 102")
    execute(url, "DELETE FROM articles WHERE id = 101")
    report = project.ingest().to_dict()
    assert report["documents"] == {"new": 0, "changed": 1, "unchanged": 1, "deleted": 1, "failed": 0}
    facilities = Principal(groups=("facilities", "support"))
    texts = " ".join(s.text for s in project.index.get(sorted(project.index.ids()), principal=facilities))
    assert "15 EUR" in texts and "12 EUR" not in texts and "Kestrel" not in texts


def test_sqlite_ingest_query_acl_and_incremental(tmp_path, sqlite_url):
    _ingest_and_update(tmp_path, sqlite_url)


def test_postgresql_ingest_query_acl_and_incremental(tmp_path, postgres_url):
    create_articles(postgres_url)
    _ingest_and_update(tmp_path, postgres_url)
    with pytest.raises(SqlSourceError, match="column 'summary' is not in the result"):
        list(_connector(postgres_url, text_template="{summary}").scan())
