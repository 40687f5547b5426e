"""Retrieval quality on a real document set: dense vs lexical vs hybrid (opt in: -m benchmark).

    pytest tests/benchmarks/bench_retrieval.py -m benchmark -s

Uses ../shared/datasets/anthropic_docs (232 pre-chunked documentation pages, 100
questions with gold chunk links). Each page becomes one file, so a hit is a retrieved
chunk from a gold page. The three retrieval settings run in one process on one index.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from framework.config import load_config_dict
from framework.project import Project

DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "anthropic_docs"
KS = (2, 5, 10)


def _slug(link: str) -> str:
    return hashlib.sha1(link.encode()).hexdigest()[:12] + ".md"


@pytest.mark.benchmark
def test_bench_retrieval_anthropic_docs(tmp_path):
    if not (DATA / "anthropic_docs.json").is_file():
        pytest.skip(f"{DATA} not present; the benchmark needs the shared data sets")
    pages = json.loads((DATA / "anthropic_docs.json").read_text())
    questions = json.loads((DATA / "docs_evaluation_dataset.json").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in pages:
        (docs / _slug(page["chunk_link"])).write_text(f"# {page['chunk_heading']}\n\n{page['text']}")
    cfg = {"workspace": str(tmp_path / "ws"),
           "sources": [{"name": "anthropic", "type": "files", "path": str(docs), "public": True}]}
    project = Project(load_config_dict(cfg), show_progress=False)
    report = project.ingest()
    print(f"\ningest seconds per stage: {report.to_dict()['seconds']}")
    # A hit: a retrieved chunk comes from any of the question's gold pages.
    per_question = [{"question": q["question"], "answer": q["correct_answer"],
                     "document": [_slug(link) for link in q["correct_chunks"]]} for q in questions]
    print(f"\n{len(pages)} pages, {project.index.count()} chunks, {len(per_question)} questions")
    print(f"{'retrieval':<10} " + " ".join(f"hit@{k:<3}" for k in KS) + "  mrr    ms/query")
    for mode in ("dense", "lexical", "hybrid"):
        p = Project(project.config.model_copy(update={"index": project.config.index.model_copy(
            update={"retrieval": mode})}), show_progress=False, embedder=project.embedder)
        m = p.evaluate_retrieval(per_question, ks=KS)
        print(f"{mode:<10} " + " ".join(f"{m[f'hit@{k}']:<7.3f}" for k in KS) + f" {m['mrr']:.3f}  {m['ms_per_query']}")
        assert m["questions"] == len(per_question)
