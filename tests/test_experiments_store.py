"""The exposure/outcome store against SQLite (WAL, several processes writing at once) and the real
PostgreSQL the SQL connector's tests start: the same checks on both."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from framework.experiments.store import Exposure, ExperimentStore, UnknownRequestError, engine_url

from postgres_server import NoPostgres, postgres_server

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def postgres_url():
    try:
        with postgres_server() as url:
            yield url
    except NoPostgres as err:
        pytest.skip(str(err))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ws' / 'experiments.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url").replace("postgresql+psycopg://", "postgresql://")
        engine = sa.create_engine(engine_url(url))
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS outcomes, exposures"))
        engine.dispose()
    s = ExperimentStore(url)
    yield s
    s.close()


def exposure(i: int, experiment: str = "greeting", arm: str = "control", **kw) -> Exposure:
    values = dict(request_id=f"req-{experiment}-{i}", experiment=experiment, arm=arm, unit_id=f"user-{i % 7}",
                  mode="rag", adapter=None, latency_s=0.25 + i / 100, prompt_tokens=40 + i, completion_tokens=12,
                  created_at=T0 + timedelta(seconds=i))
    return Exposure(**{**values, **kw})


def test_exposures_and_outcomes_round_trip(store):
    logged = [exposure(i, arm=("control", "tuned")[i % 2]) for i in range(6)]
    logged.append(exposure(0, experiment="other", adapter="t-v0002", question="q?", answer="a."))
    for e in logged:
        store.log_exposure(e)
    assert store.exposures("greeting") == logged[:6] and store.exposures("other") == logged[6:]
    assert store.exposures("greeting")[0].created_at.tzinfo is not None
    store.record_outcome("req-greeting-0", "thumbs_up", True)
    store.record_outcome("req-greeting-1", "rating", 4)
    store.record_outcome("req-greeting-0", "thumbs_up", False)  # changed their mind: the latest counts
    store.record_outcome("req-other-0", "rating", 2.5)
    assert store.outcomes("greeting") == {("req-greeting-0", "thumbs_up"): 0.0, ("req-greeting-1", "rating"): 4.0}
    assert store.outcomes("other") == {("req-other-0", "rating"): 2.5}
    assert store.counts() == {"greeting": 6, "other": 1}


def test_an_outcome_for_an_unknown_request_is_an_error_and_writes_nothing(store):
    store.log_exposure(exposure(1))
    with pytest.raises(UnknownRequestError, match="no experiment served request 'req-nope'.*nothing was written"):
        store.record_outcome("req-nope", "thumbs_up", 1)
    for name, value, says in (("1bad", 1, "outcome name '1bad' must start with a letter"),
                              ("rating", float("nan"), "must be a finite number"),
                              ("rating", "4", "must be a finite number")):
        with pytest.raises(ValueError, match=says):
            store.record_outcome("req-greeting-1", name, value)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outcomes")).scalar() == 0


def test_a_second_store_on_the_same_database_sees_the_rows(store):
    store.log_exposure(exposure(3))
    other = ExperimentStore(store.url)
    other.record_outcome("req-greeting-3", "resolved", 1)  # tables exist already: created if not exists
    assert store.outcomes("greeting") == {("req-greeting-3", "resolved"): 1.0}
    other.close()


def test_postgresql_urls_use_the_installed_psycopg_driver():
    assert engine_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"


WRITER = """
import sys
from datetime import datetime, timezone
from framework.experiments.store import Exposure, ExperimentStore
store, worker = ExperimentStore(sys.argv[1]), sys.argv[2]
for i in range(150):
    rid = f"w{worker}-{i}"
    store.log_exposure(Exposure(rid, "greeting", "control", f"u{i}", "rag", None, 0.1, 10, 5,
                                datetime.now(timezone.utc)))
    store.record_outcome(rid, "thumbs_up", i % 2)
"""


def test_several_processes_write_to_one_sqlite_file_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'experiments.sqlite'}"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(w)], env={"PYTHONPATH": "."},
                              stderr=subprocess.PIPE, text=True) for w in range(4)]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    store = ExperimentStore(url)
    assert len(store.exposures("greeting")) == 600 and len(store.outcomes("greeting")) == 600
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    store.close()
