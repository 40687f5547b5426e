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


REGISTRY: dict[str, Callable] = {"files": _files, "confluence": _confluence, "notion": _notion, "slack": _slack}


def build_connector(cfg) -> Connector:
    try:
        return REGISTRY[cfg.type](cfg)
    except KeyError:
        raise ValueError(f"sources.{cfg.name}: unknown type {cfg.type!r}; allowed: {sorted(REGISTRY)}") from None


__all__ = ["FilesConnector", "ConfluenceConnector", "NotionConnector", "SlackConnector", "build_connector",
           "REGISTRY"]
