"""Every path of a workspace, in one place.

Everything a project writes lives under one folder (`workspace:` in ragtune.yaml, default
`./.ragtune`): deleting it resets the project, and nothing else on disk is written. Code
asks a `Workspace` for a path instead of joining folder names itself, so the layout is
spelled once and a new file never lands somewhere unexpected.

Example:
    >>> ws = Workspace(Path(".ragtune"))
    >>> ws.ledger.as_posix()
    '.ragtune/ledger.sqlite'
    >>> ws.dataset_root("default").as_posix()
    '.ragtune/datasets/default'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def chroma(self) -> Path:
        """The embedded Chroma store (unused when `index.url` names a Chroma server)."""
        return self.root / "chroma"

    @property
    def ledger(self) -> Path:
        """The ingest ledger: which documents are indexed at which version (SQLite)."""
        return self.root / "ledger.sqlite"

    @property
    def ingest_lock(self) -> Path:
        return self.root / "ingest.lock"

    def lexical(self, collection: str) -> Path:
        """The BM25 index kept beside a Chroma collection."""
        return self.root / "lexical" / collection

    def calibration(self, collection: str) -> Path:
        """The retrieval-confidence fit of a collection (`ragtune eval --retrieval-only --calibrate`)."""
        return self.root / "calibration" / f"{collection}.json"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    def dataset_root(self, name: str) -> Path:
        """The folder holding a dataset's `vNNNN/` versions and its `latest` link."""
        return self.datasets / name

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    def checkpoints(self, adapter: str) -> Path:
        """Checkpoints of an adapter's training run in progress (`ragtune finetune --resume`)."""
        return self.root / "checkpoints" / adapter

    def refresh(self, adapter: str) -> Path:
        """State of an adapter's refresh in progress and of the last one (`ragtune refresh`), and its lock."""
        return self.root / "refresh" / adapter

    def training_lock(self, adapter: str) -> Path:
        """Held by the run training an adapter, so a second run of it fails at once (framework.training.lock)."""
        return self.root / "checkpoints" / f"{adapter}.lock"

    def merged(self, key: str) -> Path:
        """Default output of `ragtune adapters merge` for an adapter version key ("name-v0001")."""
        return self.root / "merged" / key

    def exports(self, key: str) -> Path:
        """Default output of `ragtune adapters export` for an adapter version key ("name-v0001")."""
        return self.root / "exports" / key

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def ab_report(self, experiment: str, stamp: str | None = None) -> Path:
        """Where `ragtune ab report` writes one report of an experiment (report.md, report.json, charts), by
        default under the time now (UTC)."""
        return self.reports / "ab" / experiment / (stamp or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))

    @property
    def experiments(self) -> Path:
        """Exposures and outcomes of A/B experiments (SQLite, WAL), unless `experiments_store` names a database."""
        return self.root / "experiments.sqlite"

    @property
    def logs(self) -> Path:
        return self.root / "logs"
