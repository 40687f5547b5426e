"""Ingest cost of the live-source connectors against the files connector (opt in: -m benchmark).

    pytest tests/benchmarks/bench_live_sources.py -m benchmark -s

The 232 pages of ../shared/datasets/anthropic_docs become, in one process: a folder of
Markdown files (the baseline), a git repository with one file per page, a SQLite table with
one row per page, and a local web site with one HTML page per page linked from an index.
After an untimed warm-up ingest, each source is ingested, re-ingested unchanged, and
re-ingested after one page changed.
The hashing embedder keeps the model out of the figures, so they show connector and
pipeline cost; ratios are against the files connector's times.
"""

from __future__ import annotations

import html
import json
import sqlite3
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from framework.project import Project, load_config_dict

DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "anthropic_docs"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Bench", "-c", "user.email=bench@example.com", *args],
                   check=True, capture_output=True)


def _write_sources(root: Path, pages: list[dict]) -> None:
    (root / "files").mkdir()
    (root / "repo").mkdir()
    (root / "site").mkdir()
    links = []
    for i, page in enumerate(pages):
        body = f"# {page['chunk_heading']}\n\n{page['text']}"
        (root / "files" / f"p{i:03d}.md").write_text(body)
        (root / "repo" / f"p{i:03d}.md").write_text(body)
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in page["text"].split("\n\n"))
        (root / "site" / f"p{i:03d}.html").write_text(
            f"<html><head><title>{html.escape(page['chunk_heading'])}</title></head><body><nav>Docs home</nav>"
            f"<main><h1>{html.escape(page['chunk_heading'])}</h1>{paragraphs}</main></body></html>")
        links.append(f'<a href="p{i:03d}.html">{i}</a>')
    (root / "site" / "index.html").write_text(f"<html><body><p>Index of pages.</p>{''.join(links)}</body></html>")
    _git(root / "repo", "init", "-q")
    _git(root / "repo", "add", ".")
    _git(root / "repo", "commit", "-q", "-m", "pages")
    with sqlite3.connect(root / "kb.sqlite") as db:
        db.execute("CREATE TABLE pages (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
        db.executemany("INSERT INTO pages VALUES (?, ?, ?)",
                       [(i, p["chunk_heading"], p["text"]) for i, p in enumerate(pages)])


def _change_one(name: str, root: Path) -> None:
    if name == "files":
        (root / "files" / "p000.md").write_text("# Changed\n\nA changed page.")
    elif name == "git":
        (root / "repo" / "p000.md").write_text("# Changed\n\nA changed page.")
        _git(root / "repo", "commit", "-q", "-am", "change one page")
    elif name == "sql":
        with sqlite3.connect(root / "kb.sqlite") as db:
            db.execute("UPDATE pages SET body = 'A changed page.' WHERE id = 0")
    else:
        (root / "site" / "p000.html").write_text("<html><head><title>Changed</title></head><body><p>A changed "
                                                 "page.</p></body></html>")


def _timed_ingest(project: Project) -> tuple[float, dict]:
    start = time.perf_counter()
    report = project.ingest().to_dict()
    return time.perf_counter() - start, report


@pytest.mark.benchmark
def test_bench_live_sources(tmp_path):
    if not (DATA / "anthropic_docs.json").is_file():
        pytest.skip(f"{DATA} not present; the benchmark needs the shared data sets")
    pages = json.loads((DATA / "anthropic_docs.json").read_text())
    _write_sources(tmp_path, pages)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path / "site")))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    sources = {
        "files": {"type": "files", "path": str(tmp_path / "files")},
        "git": {"type": "git", "path": str(tmp_path / "repo")},
        "sql": {"type": "sql", "url": f"sqlite:///{tmp_path / 'kb.sqlite'}", "table": "pages", "id_column": "id",
                "text_template": "# {title}\n\n{body}", "title_column": "title"},
        "web": {"type": "web", "start_urls": [f"{base}/index.html"], "max_depth": 1, "max_pages": 1000,
                "delay_s": 0},
    }
    rows = {}
    warm = {"workspace": str(tmp_path / "ws-warm-up"), "index": {"embedder": "hashing"},
            "sources": [{"name": "files", "public": True, **sources["files"]}]}
    Project(load_config_dict(warm), show_progress=False).ingest()  # one-time imports and set-up, not timed
    try:
        for name, source in sources.items():
            cfg = {"workspace": str(tmp_path / f"ws-{name}"), "index": {"embedder": "hashing"},
                   "sources": [{"name": name, "public": True, **source}]}
            project = Project(load_config_dict(cfg), show_progress=False)
            first, report = _timed_ingest(project)
            again, unchanged = _timed_ingest(project)
            _change_one(name, tmp_path)
            one, changed = _timed_ingest(project)
            assert unchanged["chunks_embedded"] == 0 and changed["documents"]["changed"] == 1
            rows[name] = (report["documents"]["new"], report["chunks_embedded"], first, again, one)
    finally:
        server.shutdown()
        server.server_close()
    base_first, base_again = rows["files"][2], rows["files"][3]
    print(f"\n{'source':<6} {'docs':>5} {'chunks':>6} {'first s':>8} {'unchanged s':>11} {'one changed s':>13} "
          f"{'unchanged/first':>15} {'first vs files':>14} {'unchanged vs files':>18}")
    for name, (docs, chunks, first, again, one) in rows.items():
        print(f"{name:<6} {docs:>5} {chunks:>6} {first:>8.2f} {again:>11.2f} {one:>13.2f} {again / first:>15.3f} "
              f"{first / base_first:>14.2f} {again / base_again:>18.2f}")
