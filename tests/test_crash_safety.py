"""SIGKILL `ragtune ingest` at many moments, resume, and compare with a clean run.

The kills land at exact steps (tests/ingest_killed_at.py, through `Project.ingest(on_step=...)`)
and at random moments of a `ragtune ingest` run. The corpus also changes between
kills (edits, deletions, additions), so resumed runs must finish changed and deleted
documents too. The end state must equal an uninterrupted run's: the same chunk ids,
texts and metadata in Chroma, and the same BM25 index.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from framework.ingest.pipeline import workspace_lock
from framework.retrieval.lexical import LexicalIndex
from framework.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["leave", "expenses", "security", "travel", "payroll", "office", "laptops", "hiring", "training", "parking"]


def _write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(40):
        topic = TOPICS[i % len(TOPICS)]
        lines = [f"# Policy {i}: {topic}", ""]
        lines += [f"Rule {j} of the {topic} policy number {i}: employees must follow step {j * i} "
                  f"within {j + 3} days of the request." for j in range(3 + i % 7)]
        (folder / f"{topic}-{i:02d}.md").write_text("\n".join(lines))


def _change_corpus(folder: Path) -> None:
    (folder / "leave-00.md").write_text("# Policy 0: leave\n\nEvery employee now receives 30 days of annual leave.")
    (folder / "office-05.md").unlink()
    (folder / "hiring-07.md").unlink()
    (folder / "new-policy.md").write_text("# Remote work\n\nRemote work is allowed two days per week.")


def _config(tmp_path: Path, name: str, corpus: Path) -> Path:
    cfg = {"workspace": str(tmp_path / name), "precision": "fp32",
           "sources": [{"name": "docs", "type": "files", "path": str(corpus), "acl": ["staff"],
                        "acl_paths": {"security-*": ["security"]}}],
           "index": {"embedder": "hashing", "chunk_size": 24, "chunk_overlap": 4, "batch_size": 2}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _ingest(config: Path, kill_at: str | None = None, kill_after_s: float | None = None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "framework", "ingest", "-c", str(config), "--json"]
    if kill_at:
        command = [sys.executable, str(ROOT / "tests" / "ingest_killed_at.py"), str(config), kill_at]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_s is not None:
        ledger = Path(yaml.safe_load(config.read_text())["workspace"]) / "ledger.sqlite"
        while proc.poll() is None and not ledger.exists():  # count from the start of the work, not of Python
            time.sleep(0.05)
        time.sleep(kill_after_s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _state(workspace: Path) -> dict:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(workspace / "chroma"), settings=Settings(anonymized_telemetry=False))
    res = client.get_collection("ragtune").get(include=["documents", "metadatas"])
    rows = {i: (d, m) for i, d, m in zip(res["ids"], res["documents"], res["metadatas"])}
    assert len(rows) == len(res["ids"]), "duplicate chunk ids"
    lexical = LexicalIndex.load(workspace / "lexical" / "ragtune")
    searches = {q: lexical.search(q, groups=("staff",), k=5) for q in ("leave days", "remote work", "parking step")}
    return {"chunks": rows, "lexical": sorted(zip(lexical.ids, map(tuple, lexical.acls))), "searches": searches}


def test_sigkill_at_any_moment_then_resume_equals_a_clean_run(tmp_path):
    corpus = tmp_path / "corpus"
    _write_corpus(corpus)
    crashed = _config(tmp_path, "crashed", corpus)
    kills = 0
    for point in ("parsed:3", "upserted:2", "committed:9"):
        rc, _, err = _ingest(crashed, kill_at=point)
        assert rc == -signal.SIGKILL, err
        kills += 1
    _change_corpus(corpus)
    for point in ("upserted:1", "committed:2", "removed:1"):
        rc, _, err = _ingest(crashed, kill_at=point)
        assert rc == -signal.SIGKILL, err
        kills += 1
    rng = random.Random(7)
    for _ in range(2):
        rc, _, _ = _ingest(crashed, kill_after_s=rng.uniform(0.0, 1.5))
        kills += rc == -signal.SIGKILL
    rc, out, err = _ingest(crashed)
    assert rc == 0, err
    clean = _config(tmp_path, "clean", corpus)
    assert _ingest(clean)[0] == 0
    resumed, reference = _state(tmp_path / "crashed"), _state(tmp_path / "clean")
    assert len(reference["chunks"]) > 100 and kills >= 6
    assert resumed["chunks"] == reference["chunks"]
    assert resumed["lexical"] == reference["lexical"]
    assert resumed["searches"] == reference["searches"]
    assert all("30 days" not in d or "leave-00" in m["uri"] for d, m in resumed["chunks"].values())
    assert not any("office-05" in m["uri"] for _, m in resumed["chunks"].values())


def test_second_concurrent_ingest_fails_fast_with_a_clear_message(tmp_path):
    corpus = tmp_path / "corpus"
    _write_corpus(corpus)
    config = _config(tmp_path, "busy", corpus)
    with workspace_lock(Workspace(tmp_path / "busy")):  # as a running ingest holds it
        rc, out, err = _ingest(config)
    assert rc == 1 and out == ""
    assert "another ingest is running on workspace" in err and "wait for it to finish" in err
