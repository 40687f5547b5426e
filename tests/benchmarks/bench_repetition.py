"""Repetition and number fidelity of generated `rag` answers on both shared sets (opt in: -m benchmark).

    BENCH_QUESTIONS=12 pytest tests/benchmarks/bench_repetition.py -m benchmark -s

The bundled models, `answer_style: generative` (the style that decodes), defaults otherwise.
Per set: the mean share of repeated word 4-grams (framework.evaluation.metrics.repetition_rate,
target at most 0.05), token F1, and the answers that say a number their retrieved context does
not hold (printed, for reading: a small model may compute or misread one; decoding must not make one).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from framework.evaluation.metrics import repetition_rate, token_f1
from framework.project import Project, load_config_dict
from framework.records import Principal

sys.path.insert(0, str(Path(__file__).parent))
from bench_retrieval import _anthropic, _contoso  # noqa: E402

LIMIT = int(os.environ.get("BENCH_QUESTIONS", "12"))
NUMBER = re.compile(r"\d[\d,.:/-]*\d|\d")


@pytest.mark.benchmark
@pytest.mark.parametrize("name,load", [("anthropic_docs", _anthropic), ("contoso", _contoso)])
def test_bench_repetition(name, load, tmp_path):
    docs, questions = load(tmp_path)
    questions = [{**q, "answer": re.sub(r"\s*\[[^\[\]]+\]", "", q["answer"]).strip()} for q in questions[:LIMIT]]
    cfg = {"workspace": str(tmp_path / "ws"), "generator": {"answer_style": "generative"},
           "sources": [{"name": "bench", "type": "files", "path": str(docs), "public": True}]}
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    start = time.perf_counter()
    answers = project.ask_many([q["question"] for q in questions], mode="rag", principal=Principal())
    seconds = time.perf_counter() - start
    repetition = [repetition_rate(a.text) for a in answers]
    f1 = [token_f1(a.text, q["answer"]) for a, q in zip(answers, questions)]
    foreign = [(a.text, [n for n in NUMBER.findall(a.text) if n not in "\n".join(s.text for s in a.sources)])
               for a in answers]
    mean = sum(repetition) / len(repetition)
    print(f"\n[{name}, {len(questions)} questions] repetition {mean:.3f} (max {max(repetition):.3f}), "
          f"token F1 {sum(f1) / len(f1):.3f}, {seconds:.0f} s")
    for text, numbers in foreign:
        if numbers:
            print(f"  numbers not in the context {numbers}: {text[:160]!r}")
    assert mean <= 0.05
