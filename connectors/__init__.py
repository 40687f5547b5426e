"""Document sources. Each module yields `framework.records.Document`s via the Connector protocol.

Every connector owns its config schema (a `framework.ingest.contract.SourceConfig` subclass,
its `schema` attribute) and builds itself from it (`from_config`). `REGISTRY` is the one
table from a source's `type:` to its connector: config validation and `build_connector` both
read it, so YAML never names code by a dotted path. A new connector is its own module, one
line here, a recipe and a docs page.

Importing this package loads no model framework (no torch): connectors parse documents only.

Example:
    >>> sorted(source_types())[:3]
    ['confluence', 'files', 'git']
"""

from __future__ import annotations

from connectors.confluence import ConfluenceConnector
from connectors.files import FilesConnector
from connectors.git import GitConnector
from connectors.llamaindex_reader import LlamaIndexReaderConnector
from connectors.notion import NotionConnector
from connectors.slack import SlackConnector
from connectors.sql import SqlConnector
from connectors.web import WebConnector
from framework.ingest.contract import Connector, SourceConfig

REGISTRY: dict[str, type] = {
    "files": FilesConnector,
    "confluence": ConfluenceConnector,
    "notion": NotionConnector,
    "slack": SlackConnector,
    "git": GitConnector,
    "sql": SqlConnector,
    "web": WebConnector,
    "llamaindex": LlamaIndexReaderConnector,
}


def source_types() -> dict[str, type[SourceConfig]]:
    """`type:` value -> the schema that validates such a `sources:` entry."""
    return {name: connector.schema for name, connector in REGISTRY.items()}


def build_connector(cfg: SourceConfig) -> Connector:
    """The connector for one validated `sources:` entry."""
    if cfg.type not in REGISTRY:
        raise ValueError(f"sources.{cfg.name}: unknown type {cfg.type!r}; allowed: {sorted(REGISTRY)}")
    return REGISTRY[cfg.type].from_config(cfg)


__all__ = ["REGISTRY", "build_connector", "source_types", "ConfluenceConnector", "FilesConnector", "GitConnector",
           "LlamaIndexReaderConnector", "NotionConnector", "SlackConnector", "SqlConnector", "WebConnector"]
