"""SQL connector: one document per row of a table or query, in any SQLAlchemy database.

Reads: a SQLAlchemy URL (`sqlite:///kb.db`, `postgresql+psycopg://user:pw@host/db`, ...) and
either a `table` (optionally `schema.table`) or a `query`. Each row becomes a document whose
text is `text_template` filled with the row's columns (Python `str.format`, e.g.
`"{question}\\n\\n{answer}"`; NULL renders as an empty string). A template or column option
naming a column the result lacks is an error naming it, raised before anything is indexed.
Document id: `<source name>:<id_column value>`. Content hash: SHA-256 of the rendered text
and metadata, so a row is re-indexed exactly when what would be indexed changes.
ACL: the source's groups, plus those of each `acl_paths:` pattern matching the row's id, plus
the comma-separated groups in `acl_column` (or a database array) when given.

Example:
    >>> conn = SqlConnector(name="kb", url="sqlite:///kb.db", table="articles", id_column="id",
    ...                     text_template="{title}\\n\\n{body}", title_column="title", acl=("support",))  # doctest: +SKIP
    >>> docs = [item.read() for item in conn.scan()]                                                       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from datetime import date, datetime
from typing import Any, Iterator, Literal, Mapping, Union

from pydantic import field_validator, model_validator

from framework.ingest.acl import AclPolicy
from framework.ingest.contract import LoadFailure, SourceConfig, SourceItem, check_template
from framework.records import Document


class SqlSource(SourceConfig):
    """Rows of a table or query in any SQLAlchemy database (see connectors/sql.py)."""

    type: Literal["sql"]
    url: str
    query: str | None = None
    table: str | None = None
    id_column: str
    text_template: str
    title_column: str | None = None
    updated_at_column: str | None = None
    author_column: str | None = None
    acl_column: str | None = None

    @field_validator("text_template")
    @classmethod
    def _template_parses(cls, value: str) -> str:
        check_template(value, allowed=None)
        return value

    @model_validator(mode="after")
    def _query_or_table(self) -> "SqlSource":
        if (self.query is None) == (self.table is None):
            raise ValueError("give exactly one of `query` (a SELECT) or `table` (a table name)")
        return self


class SqlSourceError(RuntimeError):
    """The database, table, query or a named column is unusable; nothing was indexed from it."""


class SqlConnector:
    schema = SqlSource

    @classmethod
    def from_config(cls, cfg: SqlSource) -> "SqlConnector":
        """Build from the validated `sources:` entry (see docs/connectors/sql.md)."""
        return cls(name=cfg.name, url=cfg.url, query=cfg.query, table=cfg.table, id_column=cfg.id_column,
                   text_template=cfg.text_template, title_column=cfg.title_column,
                   updated_at_column=cfg.updated_at_column, author_column=cfg.author_column,
                   acl_column=cfg.acl_column, acl=AclPolicy.from_config(cfg))

    def __init__(self, *, name: str, url: str, id_column: str, text_template: str, query: str | None = None,
                 table: str | None = None, title_column: str | None = None, updated_at_column: str | None = None,
                 author_column: str | None = None, acl_column: str | None = None,
                 acl: AclPolicy | tuple[str, ...] = ()) -> None:
        if (query is None) == (table is None):
            raise ValueError(f"sources.{name}: give exactly one of `query` or `table`")
        self.name = name
        self.url = url
        self.query = query
        self.table = table
        self.id_column = id_column
        self.text_template = text_template
        self.columns = {"title_column": title_column, "updated_at_column": updated_at_column,
                        "author_column": author_column, "acl_column": acl_column}
        self.acl = acl if isinstance(acl, AclPolicy) else AclPolicy(groups=tuple(acl))

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = create_engine(self.url)
        except (SQLAlchemyError, ImportError, ValueError) as err:
            raise SqlSourceError(f"sources.{self.name}.url: cannot use {self.url!r}: {err}") from None
        where = engine.url.render_as_string(hide_password=True)
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(self._statement(conn))
                self._check_columns(list(result.keys()))
                seen: set[str] = set()
                for row in result.mappings():
                    yield self._item(row, where, seen)
        except SQLAlchemyError as err:
            raise SqlSourceError(f"sources.{self.name}: reading {where} failed: {type(err).__name__}: "
                                 f"{str(err).splitlines()[0]}") from None
        finally:
            engine.dispose()

    def _statement(self, conn):
        from sqlalchemy import MetaData, Table, inspect, select, text
        from sqlalchemy.exc import NoSuchTableError

        if self.query is not None:
            return text(self.query)
        schema, _, name = self.table.rpartition(".")
        try:
            table = Table(name, MetaData(), schema=schema or None, autoload_with=conn)
        except NoSuchTableError:
            known = inspect(conn).get_table_names(schema=schema or None)
            raise SqlSourceError(f"sources.{self.name}.table: no table {self.table!r}; "
                                 f"the database has: {', '.join(known) or 'no tables'}") from None
        return select(table)

    def _check_columns(self, columns: list[str]) -> None:
        wanted = {"id_column": self.id_column, **{k: v for k, v in self.columns.items() if v}}
        for key, column in wanted.items():
            if column not in columns:
                raise SqlSourceError(f"sources.{self.name}.{key}: column {column!r} is not in the result; "
                                     f"it has: {', '.join(columns)}")
        for field in template_fields(self.text_template):
            if field not in columns:
                raise SqlSourceError(f"sources.{self.name}.text_template: column {field!r} is not in the result; "
                                     f"it has: {', '.join(columns)}")

    def _item(self, row: Mapping[str, Any], where: str, seen: set[str]) -> Union[SourceItem, LoadFailure]:
        key = row[self.id_column]
        label = self.table or "query"
        if key is None:
            return LoadFailure(uri=f"{where}#{label}", reason=f"a row has NULL in id column {self.id_column!r}")
        key = str(key)
        uri = f"{where}#{label}/{key}"
        if key in seen:
            return LoadFailure(uri=uri, reason=f"duplicate id {key!r} in column {self.id_column!r}; "
                                               "the first row was indexed")
        seen.add(key)
        acl = self.acl.for_path(key, carried=self._groups(row))  # a row that fails keeps its chunks under this
        values = {k: ("" if v is None else v) for k, v in row.items()}
        try:
            text = self.text_template.format_map(values).strip()
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
            return LoadFailure(uri=uri, reason=f"text_template cannot render this row ({type(err).__name__}: {err}); "
                               "fix the template or the row",
                               doc_id=f"{self.name}:{key}", acl=acl)
        if not text:
            return LoadFailure(uri=uri, reason="the text template rendered empty text; fill the row's text columns or "
                               "delete the row", doc_id=f"{self.name}:{key}", acl=acl)
        title = self._value(row, "title_column") or f"{label} {key}"
        updated_at = self._value(row, "updated_at_column")
        author = self._value(row, "author_column")
        digest = hashlib.sha256(json.dumps([text, title, updated_at, author, uri]).encode()).hexdigest()
        metadata = {"row_id": key, **({"table": self.table} if self.table else {"query": self.query})}
        if author:
            metadata["author"] = author
        doc = Document(id=f"{self.name}:{key}", text=text, source=self.name, uri=uri, title=title,
                       content_hash=digest, acl=acl, updated_at=updated_at, metadata=metadata)
        return SourceItem(doc_id=doc.id, uri=uri, content_hash=digest, read=lambda: doc, acl=acl)

    def _value(self, row: Mapping[str, Any], option: str) -> str | None:
        column = self.columns[option]
        value = row[column] if column else None
        if value is None:
            return None
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        return str(value).strip() or None

    def _groups(self, row: Mapping[str, Any]) -> tuple[str, ...]:
        column = self.columns["acl_column"]
        value = row[column] if column else None
        if value is None:
            return ()
        parts = value if isinstance(value, (list, tuple)) else re.split(r"[,\n]", str(value))
        return tuple(str(g).strip() for g in parts if str(g).strip())


def template_fields(template: str) -> list[str]:
    """The column names a str.format template reads (`{a}`, `{a.b}`, `{a[0]}`, `{a:>10}` all read `a`)."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    return list(dict.fromkeys(re.split(r"[.\[]", f, maxsplit=1)[0] for f in fields))
