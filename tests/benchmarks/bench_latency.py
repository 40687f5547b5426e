"""Query latency of ragtune's retrieval at 10,000 chunks (opt in: -m benchmark).

    pytest tests/benchmarks/bench_latency.py -m benchmark -s

Builds an index of 10,000 chunks of real text (runs of 1-3 consecutive sentences drawn from
the shared anthropic_docs pages, embedded with the bundled embedder), then times 100
real questions one at a time, as a server answers them: query embedding, Chroma search,
BM25 search and fusion, with the ACL filter on. Prints p50/p95 per retrieval setting;
the target for the default (hybrid) is p50 under 50 ms on the 2-core development machine.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from pathlib import Path

import pytest

from framework.project import Project, load_config_dict
from framework.records import Principal

DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "anthropic_docs"
CHUNKS = 10_000


@pytest.mark.benchmark
def test_bench_query_latency_10k_chunks(tmp_path):
    if not (DATA / "anthropic_docs.json").is_file():
        pytest.skip(f"{DATA} not present; the benchmark needs the shared data sets")
    pages = json.loads((DATA / "anthropic_docs.json").read_text())
    questions = [q["question"] for q in json.loads((DATA / "docs_evaluation_dataset.json").read_text())]
    sentences = [s for p in pages for s in re.split(r"(?<=[.!?])\s+", p["text"]) if len(s.split()) > 3]
    rng = random.Random(0)
    docs = tmp_path / "docs"
    docs.mkdir()
    # One file per chunk-sized passage: 10,000 files, each a run of 1-3 sentences (one chunk each).
    for i in range(CHUNKS):
        start = rng.randrange(len(sentences) - 3)
        (docs / f"p{i:05d}.txt").write_text(" ".join(sentences[start:start + rng.randint(1, 3)]))
    cfg = {"workspace": str(tmp_path / "ws"),
           "sources": [{"name": "bench", "type": "files", "path": str(docs), "acl": ["staff"]}]}
    project = Project(load_config_dict(cfg), show_progress=True)
    start = time.perf_counter()
    project.ingest()
    print(f"\ningested {project.index.count()} chunks in {time.perf_counter() - start:.0f} s")
    principal = Principal(user="bench", groups=("staff",))
    print(f"{'retrieval':<10} p50 ms   p95 ms")
    for mode in ("dense", "lexical", "hybrid"):
        p = Project(project.config.model_copy(update={"index": project.config.index.model_copy(
            update={"retrieval": mode})}), show_progress=False, embedder=project.embedder)
        p.retrieve("warm up", principal=principal)  # loads the BM25 index once, as a server does at start
        times = []
        for q in questions:
            t = time.perf_counter()
            assert p.retrieve(q, principal=principal)
            times.append(1000 * (time.perf_counter() - t))
        times.sort()
        print(f"{mode:<10} {statistics.median(times):<8.1f} {times[int(0.95 * len(times)) - 1]:.1f}")
