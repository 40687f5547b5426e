"""Abstention: how often `router.abstain_below` declines questions nobody's readable documents answer,
and how often it wrongly declines answerable ones (opt in: -m benchmark; retrieval only, no generation).

    pytest tests/benchmarks/bench_abstention.py -m benchmark -s -k markdown   # light: no PDFs
    pytest tests/benchmarks/bench_abstention.py -m benchmark -s

Retrieval is the default (bundled all-MiniLM embedder, hybrid, top_k 3). For each question the
router's abstention feature is recorded: the best retrieved chunk's cosine similarity (no
calibration, as after `ragtune init`).

- `test_bench_abstention_markdown_corpora` (light): the anthropic_docs pages alone and the demo corpus
  (framework/demo) alone, each asked its own questions (answerable: 100 and 40) and the other sets'
  questions (unanswerable: contoso's 100 and the rest).
- `test_bench_abstention` (ingests the contoso PDFs): one index holds both shared sets, each readable
  by one group only (contoso: `hr`, anthropic_docs: `eng`); a set's questions asked by its own group
  are answerable, asked by the other group unanswerable (the index holds the answer, the user may not
  read it, as with restricted folders). `BENCH_ABSTAIN_SINGLE=1` adds each corpus alone.

On each set the highest floor that wrongly declines at most 5% of its answerable questions is chosen
and its rates are reported on the other sets it never saw, with 95% Wilson intervals and a sweep
table; then the highest floor that holds on every set, and the shipped one
(framework.retrieval.confidence.MEASURED_FLOORS). `BENCH_WORKSPACE=/tmp/x` keeps the indexes for reruns.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.retrieval.confidence import measured_floor, top_score

sys.path.insert(0, str(Path(__file__).parent))  # llamaindex_baseline.py lives beside this file
from llamaindex_baseline import write_anthropic_pages  # noqa: E402

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
SWEEP = [round(0.20 + 0.025 * i, 3) for i in range(13)]  # 0.20 .. 0.50
MAX_FALSE_ABSTENTION = 0.05
HR, ENG = Principal(user="hr-user", groups=("hr",)), Principal(user="eng-user", groups=("eng",))


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (stays inside [0, 1] at 0 or n hits)."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _questions() -> tuple[Path, list[str], list[str]]:
    contoso, anthropic = SHARED / "contoso", SHARED / "anthropic_docs"
    if not (contoso / "evals" / "ground_truth.jsonl").is_file() or not (anthropic / "anthropic_docs.json").is_file():
        pytest.skip(f"{SHARED} not present; the benchmark needs the shared data sets")
    c = [json.loads(line)["question"] for line in (contoso / "evals" / "ground_truth.jsonl").read_text().splitlines()
         if line.strip()]
    a = [q["question"] for q in json.loads((anthropic / "docs_evaluation_dataset.json").read_text())]
    return contoso / "data", c, a


def _project(workspace: Path, sources: list[dict], embedder: str) -> Project:
    project = Project(load_config_dict({"workspace": str(workspace), "sources": sources,
                                        "index": {"embedder": embedder}}), show_progress=False)
    start = time.perf_counter()
    project.ingest()
    print(f"\n[{embedder}] ingest {[s['name'] for s in sources]}: {time.perf_counter() - start:.1f} s, "
          f"{project.index.count()} chunks")
    return project


def _scores(project: Project, questions: list[str], principal: Principal) -> list[float | None]:
    retriever = project.retriever
    return [top_score(s) for s in retriever.retrieve_many(questions, principal=principal)]


def _rate(scores: list[float | None], floor: float) -> tuple[int, int]:
    """(abstentions, questions) at `floor`, as the router decides: no source, or a top score below it."""
    return sum(s is None or s < floor for s in scores), len(scores)


def _fmt(hits: int, n: int) -> str:
    lo, hi = wilson(hits, n)
    return f"{hits / n:.2f} [{lo:.2f}, {hi:.2f}]"


def _choose(answerable: list[float | None]) -> float:
    """The highest sweep floor that declines at most MAX_FALSE_ABSTENTION of the answerable questions."""
    ok = [f for f in SWEEP if _rate(answerable, f)[0] / len(answerable) <= MAX_FALSE_ABSTENTION]
    return max(ok) if ok else min(SWEEP)


def _table(sides: dict[str, tuple[list, list]]) -> None:
    names = list(sides)
    print("floor  " + "  ".join(f"{n + ': abstain on unanswerable':<40} {n + ': false abstention':<34}" for n in names))
    for f in SWEEP:
        cells = []
        for n in names:
            ans, unans = sides[n]
            cells.append(f"{_fmt(*_rate(unans, f)):<40} {_fmt(*_rate(ans, f)):<34}")
        print(f"{f:<6} " + "  ".join(cells))


DEMO = Path(__file__).resolve().parents[2] / "framework" / "demo"


def _report(embedder: str, sides: dict[str, tuple[list, list]], choosers: tuple[str, ...]) -> None:
    print(f"\n[{embedder}] sweep (rate [95% Wilson interval]); unanswerable: questions no readable document answers")
    _table(sides)
    for chooser in choosers:
        floor = _choose(sides[chooser][0])
        print(f"\n[{embedder}] chosen on {chooser} (false abstention <= {MAX_FALSE_ABSTENTION}): floor {floor}")
        for name, (ans, unans) in sides.items():
            tag = "chosen here" if name == chooser else "held out"
            print(f"  {name:<24} ({tag}): abstains on unanswerable {_fmt(*_rate(unans, floor))}, "
                  f"false abstention {_fmt(*_rate(ans, floor))}")
    every = min(_choose(ans) for ans, _ in sides.values())
    print(f"\n[{embedder}] the highest floor with false abstention <= {MAX_FALSE_ABSTENTION} on every set: {every}")
    shipped = measured_floor(embedder, "hybrid")
    if shipped is None:
        print(f"\n[{embedder}] no floor ships for this embedder")
        return
    print(f"\n[{embedder}] shipped floor (router.abstain_below: auto) {shipped}:")
    for name, (ans, unans) in sides.items():
        print(f"  {name:<24}: abstains on unanswerable {_fmt(*_rate(unans, shipped))}, "
              f"false abstention {_fmt(*_rate(ans, shipped))}")


@pytest.mark.benchmark
def test_bench_abstention_markdown_corpora(tmp_path):
    """Without the PDFs (light): anthropic_docs alone and the demo corpus alone, each asked its own
    questions (answerable) and the other sets' questions (unanswerable)."""
    _, contoso_q, anthropic_q = _questions()
    demo_q = [json.loads(line)["question"] for line in (DEMO / "questions.jsonl").read_text().splitlines() if line]
    root = Path(os.environ.get("BENCH_WORKSPACE") or tmp_path)
    pages = write_anthropic_pages(SHARED / "anthropic_docs", root / "anthropic-pages")
    anthropic = _project(root / "anthropic-only-bundled", [{"name": "anthropic", "type": "files", "path": str(pages),
                                                            "public": True}], "bundled")
    demo = _project(root / "demo-bundled", [{"name": "demo", "type": "files", "path": str(DEMO / "documents"),
                                             "include": ["*.md"], "public": True}], "bundled")
    sides = {"anthropic index": (_scores(anthropic, anthropic_q, ENG), _scores(anthropic, contoso_q + demo_q, ENG)),
             "demo index": (_scores(demo, demo_q, ENG), _scores(demo, contoso_q + anthropic_q, ENG))}
    (root / "abstention-scores-markdown.json").write_text(json.dumps(sides))
    _report("bundled", sides, ("anthropic index", "demo index"))
    for name, (ans, _) in sides.items():
        assert _rate(ans, measured_floor("bundled", "hybrid"))[0] / len(ans) <= 0.1, name


@pytest.mark.benchmark
@pytest.mark.parametrize("embedder", ["bundled", "hashing"])
def test_bench_abstention(embedder, tmp_path):
    contoso_docs, contoso_q, anthropic_q = _questions()
    root = Path(os.environ.get("BENCH_WORKSPACE") or tmp_path)
    pages = write_anthropic_pages(SHARED / "anthropic_docs", root / "anthropic-pages")
    contoso_src = {"name": "contoso", "type": "files", "path": str(contoso_docs), "acl": ["hr"]}
    anthropic_src = {"name": "anthropic", "type": "files", "path": str(pages), "acl": ["eng"]}
    mixed = _project(root / f"mixed-{embedder}", [contoso_src, anthropic_src], embedder)
    sides = {
        "contoso": (_scores(mixed, contoso_q, HR), _scores(mixed, anthropic_q, HR)),
        "anthropic": (_scores(mixed, anthropic_q, ENG), _scores(mixed, contoso_q, ENG)),
    }
    if os.environ.get("BENCH_ABSTAIN_SINGLE"):
        only_c = _project(root / f"contoso-only-{embedder}", [contoso_src], embedder)
        only_a = _project(root / f"anthropic-only-{embedder}", [anthropic_src], embedder)
        sides["contoso index alone"] = (_scores(only_c, contoso_q, HR), _scores(only_c, anthropic_q, HR))
        sides["anthropic index alone"] = (_scores(only_a, anthropic_q, ENG), _scores(only_a, contoso_q, ENG))
    (root / f"abstention-scores-{embedder}.json").write_text(json.dumps(sides))
    _report(embedder, sides, ("contoso", "anthropic"))
    shipped = measured_floor(embedder, "hybrid")
    if embedder == "bundled" and shipped is not None:  # the default must not decline answerable questions
        for name, (ans, _) in sides.items():
            assert _rate(ans, shipped)[0] / len(ans) <= 0.1, f"{name}: the floor declines answerable questions"
