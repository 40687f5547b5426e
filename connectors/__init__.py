"""Document sources. Each module yields `framework.records.Document`s via the Connector protocol.

`build_connector` maps a validated source config to its connector through an explicit
registry (never a dotted-path import from YAML).
"""

from __future__ import annotations

from typing import Callable

from framework.acl import AclPolicy
from framework.connector import Connector

from connectors.archive import ArchiveLimits
from connectors.confluence import ConfluenceConnector
from connectors.files import FilesConnector
from connectors.notion import NotionConnector
from connectors.slack import SlackConnector


def _files(cfg) -> Connector:
    return FilesConnector(name=cfg.name, root=cfg.path, include=tuple(cfg.include), exclude=tuple(cfg.exclude),
                          acl=AclPolicy.from_config(cfg), max_bytes=int(cfg.max_file_mb * 1024 * 1024))


def _confluence(cfg) -> Connector:
    return ConfluenceConnector(name=cfg.name, path=cfg.path, acl=AclPolicy.from_config(cfg),
                               limits=ArchiveLimits.from_config(cfg), base_url=cfg.base_url,
                               attachments=cfg.attachments)


def _notion(cfg) -> Connector:
    return NotionConnector(name=cfg.name, path=cfg.path, acl=AclPolicy.from_config(cfg),
                           limits=ArchiveLimits.from_config(cfg))


def _slack(cfg) -> Connector:
    return SlackConnector(name=cfg.name, path=cfg.path, acl=AclPolicy.from_config(cfg),
                          limits=ArchiveLimits.from_config(cfg), workspace_url=cfg.workspace_url,
                          gap_minutes=cfg.conversation_gap_minutes, include_private=cfg.include_private,
                          include_direct=cfg.include_direct)


def _git(cfg) -> Connector:
    from connectors.git import GitConnector

    return GitConnector(name=cfg.name, repo=cfg.path, ref=cfg.ref, include=tuple(cfg.include),
                        exclude=tuple(cfg.exclude), acl=AclPolicy.from_config(cfg),
                        max_bytes=int(cfg.max_file_mb * 1024 * 1024), uri_template=cfg.uri_template)


def _sql(cfg) -> Connector:
    from connectors.sql import SqlConnector

    return SqlConnector(name=cfg.name, url=cfg.url, query=cfg.query, table=cfg.table, id_column=cfg.id_column,
                        text_template=cfg.text_template, title_column=cfg.title_column,
                        updated_at_column=cfg.updated_at_column, author_column=cfg.author_column,
                        acl_column=cfg.acl_column, acl=AclPolicy.from_config(cfg))


def _web(cfg) -> Connector:
    from connectors.web import WebConnector

    return WebConnector(name=cfg.name, start_urls=tuple(cfg.start_urls), sitemap=cfg.sitemap,
                        max_depth=cfg.max_depth, max_pages=cfg.max_pages, delay_s=cfg.delay_s,
                        timeout_s=cfg.timeout_s, max_bytes=int(cfg.max_page_mb * 1024 * 1024),
                        user_agent=cfg.user_agent, acl=AclPolicy.from_config(cfg))


def _llamaindex(cfg) -> Connector:
    from connectors.llamaindex_reader import LlamaIndexReaderConnector, import_reader

    reader = import_reader(cfg.reader, cfg.reader_args, source=cfg.name)
    return LlamaIndexReaderConnector(name=cfg.name, reader=reader, load_args=cfg.load_args, id_key=cfg.id_key,
                                     acl_key=cfg.acl_key, acl=AclPolicy.from_config(cfg))


REGISTRY: dict[str, Callable] = {"files": _files, "confluence": _confluence, "notion": _notion, "slack": _slack}
REGISTRY["git"] = _git
REGISTRY["sql"] = _sql
REGISTRY["web"] = _web
REGISTRY["llamaindex"] = _llamaindex


def build_connector(cfg) -> Connector:
    try:
        return REGISTRY[cfg.type](cfg)
    except KeyError:
        raise ValueError(f"sources.{cfg.name}: unknown type {cfg.type!r}; allowed: {sorted(REGISTRY)}") from None


__all__ = ["FilesConnector", "ConfluenceConnector", "NotionConnector", "SlackConnector", "build_connector",
           "REGISTRY"]
