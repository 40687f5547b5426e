"""Document sources. Each module yields `framework.records.Document`s via the Connector protocol.

`build_connector` maps a validated source config to its connector through an explicit
registry (never a dotted-path import from YAML).
"""

from __future__ import annotations

from typing import Callable

from framework.acl import AclPolicy
from framework.connector import Connector

from connectors.files import FilesConnector


def _files(cfg) -> Connector:
    return FilesConnector(name=cfg.name, root=cfg.path, include=tuple(cfg.include), exclude=tuple(cfg.exclude),
                          acl=AclPolicy.from_config(cfg), max_bytes=int(cfg.max_file_mb * 1024 * 1024))


REGISTRY: dict[str, Callable] = {"files": _files}


def build_connector(cfg) -> Connector:
    try:
        return REGISTRY[cfg.type](cfg)
    except KeyError:
        raise ValueError(f"sources.{cfg.name}: unknown type {cfg.type!r}; allowed: {sorted(REGISTRY)}") from None


__all__ = ["FilesConnector", "build_connector", "REGISTRY"]
