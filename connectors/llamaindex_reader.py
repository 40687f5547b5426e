"""LlamaIndex reader connector: any `BaseReader` (SimpleDirectoryReader, the LlamaHub readers) as a source.

Two ways to use it:
- In Python, with any reader object you build:
  `LlamaIndexReaderConnector(name="notes", reader=SomeReader(...), acl=("staff",))`, ingested
  with `project.ingest(extra=[connector])`.
- In YAML, naming the class as `reader: "llama_index.<module>:<Class>"` with `reader_args`
  (given to the constructor) and `load_args` (given to `load_data`). Only classes in the
  `llama_index` namespace that subclass `BaseReader` are accepted: the import is explicit,
  checked, and cannot reach arbitrary code named in a config file.

Document id: `<source name>:<key>`, where the key is the metadata value named by `id_key`
(e.g. `file_name`; repeats get `#2`, `#3` in reader order), else the reader's own doc id
when it set one, else (when the reader leaves LlamaIndex's random UUID) a hash of the
text and metadata, so ids stay stable across runs but a changed document shows as deleted +
new. Content hash: SHA-256 of the text, title, uri, updated_at and author.
ACL: the source's groups, plus those of each `acl_paths:` pattern matching the key, plus the
groups in the metadata value named by `acl_key` (a list or comma-separated string).

Example:
    >>> from llama_index.core import SimpleDirectoryReader
    >>> conn = LlamaIndexReaderConnector(name="notes", reader=SimpleDirectoryReader("notes/"),
    ...                                  id_key="file_name", acl=("staff",))  # doctest: +SKIP
    >>> project.ingest(extra=[conn])                                          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import re
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Literal, Union

from pydantic import field_validator

from framework.ingest.acl import AclPolicy
from framework.ingest.contract import LoadFailure, SourceConfig, SourceItem
from framework.records import Document


class LlamaIndexSource(SourceConfig):
    """Any LlamaIndex reader from the `llama_index` namespace (see connectors/llamaindex_reader.py)."""

    type: Literal["llamaindex"]
    reader: str
    reader_args: dict[str, Any] = {}
    load_args: dict[str, Any] = {}
    id_key: str | None = None
    acl_key: str | None = None

    @field_validator("reader")
    @classmethod
    def _llama_index_only(cls, value: str) -> str:
        if not re.fullmatch(r"llama_index(\.[A-Za-z_]\w*)+:[A-Za-z_]\w*", value):
            raise ValueError(f"{value!r} must name a reader class as 'llama_index.<module>:<Class>', e.g. "
                             "'llama_index.core:SimpleDirectoryReader'; for readers outside the llama_index "
                             "namespace, build LlamaIndexReaderConnector in Python (docs/connectors/llamaindex.md)")
        return value

log = logging.getLogger(__name__)

TITLE_KEYS = ("title", "file_name", "name", "filename")
URI_KEYS = ("url", "uri", "source", "file_path")
UPDATED_KEYS = ("updated_at", "last_modified_date", "last_modified", "modified_at", "date")


class ReaderError(RuntimeError):
    """The reader could not be built or failed to load; nothing indexed from it was touched."""


def import_reader(spec: str, reader_args: dict[str, Any], *, source: str):
    """Build the reader named `llama_index.<module>:<Class>` with `reader_args`, with errors naming the keys."""
    from llama_index.core.readers.base import BaseReader

    module_name, _, class_name = spec.partition(":")
    if not module_name.startswith("llama_index.") or not class_name:
        raise ReaderError(f"sources.{source}.reader: {spec!r} must be 'llama_index.<module>:<Class>'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ReaderError(f"sources.{source}.reader: cannot import {module_name} ({err}); install the package "
                          "that provides it, e.g. pip install llama-index-readers-<name>") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseReader)):
        raise ReaderError(f"sources.{source}.reader: {spec!r} is not a LlamaIndex reader class (a BaseReader)")
    try:
        return cls(**reader_args)
    except (TypeError, ValueError) as err:
        raise ReaderError(f"sources.{source}.reader_args: {class_name} refused them: {err}") from None


class LlamaIndexReaderConnector:
    schema = LlamaIndexSource

    @classmethod
    def from_config(cls, cfg: LlamaIndexSource) -> "LlamaIndexReaderConnector":
        """Build from the validated `sources:` entry (see docs/connectors/llamaindex.md)."""
        return cls(name=cfg.name, reader=import_reader(cfg.reader, cfg.reader_args, source=cfg.name),
                   load_args=cfg.load_args, id_key=cfg.id_key, acl_key=cfg.acl_key, acl=AclPolicy.from_config(cfg))

    def __init__(self, *, name: str, reader, load_args: dict[str, Any] | None = None, id_key: str | None = None,
                 acl_key: str | None = None, acl: AclPolicy | tuple[str, ...] = ()) -> None:
        self.name = name
        self.reader = reader
        self.load_args = dict(load_args or {})
        self.id_key = id_key
        self.acl_key = acl_key
        self.acl = acl if isinstance(acl, AclPolicy) else AclPolicy(groups=tuple(acl))

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]:
        kind = type(self.reader).__name__
        try:
            documents = self.reader.load_data(**self.load_args)
        except Exception as err:  # readers raise anything; the run must say which source failed and why
            raise ReaderError(f"sources.{self.name}: {kind}.load_data failed: {type(err).__name__}: {err}") from err
        repeats: Counter = Counter()
        hashed_ids = 0
        for position, doc in enumerate(documents):
            key, hashed = self._key(doc)
            if key is None:
                yield LoadFailure(uri=f"{kind}:{position}", reason=f"document has no metadata key {self.id_key!r} "
                                                                  "(set by id_key)")
                continue
            hashed_ids += hashed
            repeats[key] += 1
            if repeats[key] > 1:
                key = f"{key}#{repeats[key]}"
            yield self._item(doc, key, kind)
        if hashed_ids:
            log.warning("sources.%s: %s gave %d documents random ids; their ids are derived from their content, so "
                        "an edited document is re-indexed as deleted + new. Set id_key to a stable metadata key.",
                        self.name, kind, hashed_ids)

    def _key(self, doc) -> tuple[str | None, bool]:
        meta = doc.metadata or {}
        if self.id_key:
            value = meta.get(self.id_key)
            return (None if value in (None, "") else str(value)), False
        if doc.id_ and not _is_random_uuid(doc.id_):
            return doc.id_, False
        blob = json.dumps([doc.text, meta], sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:24], True

    def _item(self, doc, key: str, kind: str) -> Union[SourceItem, LoadFailure]:
        meta = doc.metadata or {}
        doc_id = f"{self.name}:{key}"
        uri = _uri(_first(meta, URI_KEYS)) or f"llamaindex://{self.name}/{key}"
        text = (doc.text or "").strip()
        acl = self.acl.for_path(key, carried=_groups(meta.get(self.acl_key)) if self.acl_key else ())
        if not text:
            return LoadFailure(uri=uri, reason=f"{kind} returned the document without text; check the reader's "
                               "source for it", doc_id=doc_id, acl=acl)
        title = _first(meta, TITLE_KEYS) or key
        updated_at = _first(meta, UPDATED_KEYS)
        author = _first(meta, ("author",))
        digest = hashlib.sha256(json.dumps([text, title, uri, updated_at, author]).encode()).hexdigest()
        metadata = {"reader": kind, **({"author": author} if author else {})}
        record = Document(id=doc_id, text=text, source=self.name, uri=uri, title=title, content_hash=digest,
                          acl=acl, updated_at=updated_at, metadata=metadata)
        return SourceItem(doc_id=doc_id, uri=uri, content_hash=digest, read=lambda: record, acl=acl)


def _is_random_uuid(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


def _first(meta: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = meta.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _uri(value: str | None) -> str | None:
    if value and not re.match(r"^[a-z][a-z0-9+.-]*://", value) and Path(value).is_absolute():
        return Path(value).as_uri()
    return value


def _groups(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(g).strip() for g in parts if str(g).strip())
