"""Exposures and outcomes of experiments, in SQLite (the workspace's experiments.sqlite) or any database
SQLAlchemy reaches (`experiments_store: postgresql://...`).

Two tables. `exposures`: one row per answer served under an experiment (request id, unit id, experiment,
arm, mode, adapter version, latency, prompt and completion tokens, time; the question and answer text only
for an experiment with `log_text: true`). `outcomes`: what came of a request (a name and a number: thumbs
1/0, resolved 1/0, a rating), kept as a history; the report reads the latest value per request and name.

An outcome is written by one INSERT ... SELECT that finds its exposure in the same statement, so an
unknown request id writes nothing and raises `UnknownRequestError`, even with several writers at once.
SQLite runs in WAL mode with a busy timeout: several server processes share one file, each write waiting
its turn; tables are created with IF NOT EXISTS, so processes starting together do not collide.

Example:
    >>> store = ExperimentStore("sqlite:///.ragtune/experiments.sqlite")   # doctest: +SKIP
    >>> store.log_exposure(exposure); store.record_outcome(exposure.request_id, "thumbs_up", 1.0)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

OUTCOME_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
META = sa.MetaData()
EXPOSURES = sa.Table(
    "exposures", META,
    sa.Column("request_id", sa.String(100), primary_key=True),
    sa.Column("experiment", sa.String(64), nullable=False, index=True),
    sa.Column("arm", sa.String(64), nullable=False),
    sa.Column("unit_id", sa.String(256), nullable=False),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("adapter", sa.String(200)),
    sa.Column("latency_s", sa.Float, nullable=False),
    sa.Column("prompt_tokens", sa.Integer),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("question", sa.Text),
    sa.Column("answer", sa.Text),
)
OUTCOMES = sa.Table(
    "outcomes", META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(100), sa.ForeignKey("exposures.request_id"), nullable=False, index=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class UnknownRequestError(LookupError):
    """An outcome for a request no experiment served (a typo, another server's id, or an answer outside
    any experiment): nothing is written."""


@dataclass(frozen=True)
class Exposure:
    """One answer served under an experiment; `question` and `answer` stay None unless the experiment has
    `log_text: true`."""

    request_id: str
    experiment: str
    arm: str
    unit_id: str
    mode: str
    adapter: str | None
    latency_s: float
    prompt_tokens: int | None
    completion_tokens: int
    created_at: datetime
    question: str | None = None
    answer: str | None = None


def engine_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean the psycopg 3 driver ragtune installs (SQLAlchemy would pick psycopg2)."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def check_outcome(name: str, value: float | bool) -> float:
    """The outcome as a float, or a ValueError saying what a name and a value may be."""
    if not isinstance(name, str) or not OUTCOME_NAME.fullmatch(name):
        raise ValueError(f"outcome name {name!r} must start with a letter, then letters, digits, . _ - "
                         "(at most 64), e.g. thumbs_up, resolved, rating")
    if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return float(value)
    raise ValueError(f"outcome value {value!r} must be a finite number (1/0 or true/false for a rate, "
                     "e.g. a rating of 4 for a mean)")


class ExperimentStore:
    """The exposure and outcome tables behind one SQLAlchemy URL; the engine and tables are made on first use."""

    def __init__(self, url: str) -> None:
        self.url = engine_url(url)
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._open()
            return self._engine

    def _open(self) -> sa.Engine:
        parsed = sa.make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed, connect_args={"timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(parsed, pool_pre_ping=True)
        with engine.begin() as conn:
            for table in META.sorted_tables:
                conn.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))
        return engine

    def log_exposure(self, exposure: Exposure) -> None:
        with self.engine.begin() as conn:
            conn.execute(EXPOSURES.insert().values(**exposure.__dict__))

    def record_outcome(self, request_id: str, name: str, value: float | bool, *, now: datetime | None = None) -> None:
        """Record an outcome of an exposed request; `UnknownRequestError` when no experiment served it."""
        value = check_outcome(name, value)
        row = sa.select(sa.literal(request_id, sa.String), sa.literal(name, sa.String), sa.literal(value, sa.Float),
                        sa.literal(now or datetime.now(timezone.utc), sa.DateTime(timezone=True)))
        found = sa.exists().where(EXPOSURES.c.request_id == request_id)
        insert = OUTCOMES.insert().from_select(["request_id", "name", "value", "created_at"], row.where(found))
        with self.engine.begin() as conn:
            if conn.dialect.insert_returning:  # psycopg reports no rowcount for INSERT ... SELECT
                written = len(conn.execute(insert.returning(OUTCOMES.c.id)).all())
            else:
                written = conn.execute(insert).rowcount
        if written != 1:
            raise UnknownRequestError(f"no experiment served request {request_id!r}: outcomes are recorded for the "
                                      "request ids of answers given under an experiment (the `id` of the response, "
                                      "`Answer.request_id`); nothing was written")

    def exposures(self, experiment: str) -> list[Exposure]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(EXPOSURES).where(EXPOSURES.c.experiment == experiment)
                                .order_by(EXPOSURES.c.created_at, EXPOSURES.c.request_id)).mappings().all()
        return [Exposure(**{**r, "created_at": _utc(r["created_at"])}) for r in rows]

    def outcomes(self, experiment: str) -> dict[tuple[str, str], float]:
        """(request id, outcome name) -> the latest value recorded for it."""
        query = (sa.select(OUTCOMES.c.request_id, OUTCOMES.c.name, OUTCOMES.c.value)
                 .join(EXPOSURES, EXPOSURES.c.request_id == OUTCOMES.c.request_id)
                 .where(EXPOSURES.c.experiment == experiment).order_by(OUTCOMES.c.id))
        with self.engine.connect() as conn:
            return {(r.request_id, r.name): r.value for r in conn.execute(query)}

    def counts(self) -> dict[str, int]:
        """Exposures per experiment (`ragtune ab list`)."""
        query = sa.select(EXPOSURES.c.experiment, sa.func.count()).group_by(EXPOSURES.c.experiment)
        with self.engine.connect() as conn:
            return {name: n for name, n in conn.execute(query)}

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _utc(value: datetime) -> datetime:
    """SQLite returns times without their zone; every time written is UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
