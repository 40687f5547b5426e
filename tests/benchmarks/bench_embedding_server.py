"""Embeddings from a server against in-process, on the shared anthropic_docs pages (opt in: -m benchmark).

    pytest tests/benchmarks/bench_embedding_server.py -m benchmark -s
    BENCH_EMBEDDER=bundled pytest tests/benchmarks/bench_embedding_server.py -m benchmark -s

Ingests the 232 pages twice, once embedding in-process and once through a real
`/v1/embeddings` HTTP server on 127.0.0.1 (tests/embedding_server.py) that embeds with the
same model, with 2 request batches in flight; checks that the top 5 chunks of the 100 questions
are the same, with their cosine scores to 6 decimals (chunks that tie are ordered by id: re-normalizing a
served vector moves its last bits, which may swap two chunks of equal score), and prints both ingest times. BENCH_EMBEDDER: `hashing:256`
(default, no model) or `bundled` (all-MiniLM-L6-v2; the server then chunks with its tokenizer).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_packing import DATA, _anthropic_pages  # noqa: E402
from embedding_server import EmbeddingServer  # noqa: E402

from framework.project import Project, load_config_dict  # noqa: E402
from framework.records import Principal  # noqa: E402
from framework.retrieval.embedder import build_embedder  # noqa: E402

SPEC = os.environ.get("BENCH_EMBEDDER", "hashing:256")


@pytest.mark.benchmark
def test_bench_server_embeddings_retrieve_the_same(tmp_path):
    if not (DATA / "anthropic_docs").is_dir():
        pytest.skip(f"shared datasets not found at {DATA}")
    pages = _anthropic_pages(tmp_path / "pages")
    questions = [q["question"] for q in json.loads((DATA / "anthropic_docs" / "docs_evaluation_dataset.json").read_text())]
    source = [{"name": "docs", "type": "files", "path": str(pages), "include": ["*.md"], "public": True}]
    local_emb = build_embedder(SPEC, precision="fp32", device="cpu")
    with EmbeddingServer(local_emb, model="served") as server:
        endpoint = {"base_url": server.url, "model": "served", "concurrency": 2, "max_batch_texts": 64,
                    "max_tokens": local_emb.max_tokens, **({"tokenizer": SPEC} if SPEC == "bundled" else {})}
        runs = {}
        for name, index in (("in-process", {"embedder": SPEC}), ("server", {"embedder": "openai",
                                                                             "endpoint": endpoint})):
            cfg = {"workspace": str(tmp_path / name), "precision": "fp32", "sources": source,
                   "index": {**index, "retrieval": "dense", "top_k": 5}}
            project = Project(load_config_dict(cfg), show_progress=False)
            start = time.perf_counter()
            report = project.ingest()
            seconds = time.perf_counter() - start
            # ordered by score, ties (equal to 6 decimals: re-normalizing a served vector moves the last bits) by id
            hits = [sorted((-round(s.score, 6), s.chunk_id) for s in project.retrieve(q, principal=Principal()))
                    for q in questions]
            runs[name] = {"seconds": seconds, "chunks": report.chunks_embedded, "hits": hits}
    a, b = runs["in-process"], runs["server"]
    same = sum(x == y for x, y in zip(a["hits"], b["hits"]))
    print(f"\nanthropic_docs, {SPEC}: in-process ingest {a['seconds']:.1f} s ({a['chunks']} chunks), through the "
          f"server {b['seconds']:.1f} s ({b['chunks']} chunks, {len(server.batches)} requests, 2 in flight); "
          f"identical top 5 on {same} of {len(questions)} questions")
    assert a["chunks"] == b["chunks"] and same == len(questions)
