"""ragtune: teach a language model your company's documents.

The public API is loaded lazily (PEP 562): `import framework` and importing a record or a
connector never load torch; `framework.load(...)` does, when a project needs a model.

Example:
    >>> import framework
    >>> project = framework.load("ragtune.yaml")             # doctest: +SKIP
    >>> project.ingest(); project.synthesize(); project.finetune()   # doctest: +SKIP
    >>> print(project.ask("How many leave days?", mode="combined").text)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Answer": "framework.records",
    "Chunk": "framework.records",
    "Document": "framework.records",
    "Principal": "framework.records",
    "QAPair": "framework.records",
    "Source": "framework.records",
    "MODES": "framework.records",
    "Config": "framework.config",
    "ConfigError": "framework.config",
    "Workspace": "framework.workspace",
    "Project": "framework.project",
    "load": "framework.project",
    "load_config": "framework.project",
    "load_config_dict": "framework.project",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'framework' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
