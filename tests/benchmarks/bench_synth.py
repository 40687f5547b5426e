"""Synthetic Q/A sets on a real document set: speed of each generator and the set's checks.

    pytest tests/benchmarks/bench_synth.py -m benchmark -s

Uses ../shared/datasets/contoso (6 PDFs and a markdown page of a fictional company's HR
documents), ingested with the bundled embedder. One PDF is restricted to the `hr` group
and a small document with planted personal data and secrets is added. Measures
examples per minute of the extractive generator (the baseline), the bundled model as
an llm teacher on a few chunks, and an OpenAI-compatible endpoint (a local fake that
answers at once, so the figure is ragtune's own overhead); then checks the card, the
round-trip figure, that no planted string and no restricted document reaches the files.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from framework.dataset.generators import llm_pairs
from framework.dataset.paraphrase import llm_paraphrases
from framework.dataset.pii import Scrubber
from framework.dataset.teacher import OpenAICompatibleTeacher
from framework.project import Project, load_config_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_teacher import fake_openai  # noqa: E402,F401  (the fixture)

DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "contoso"
PLANTED = {
    "email": "maria.lopez@contoso-hr.example.com", "phone": "+1 425-555-0147", "iban": "DE89 3704 0044 0532 0130 00",
    "card": "4539 1488 0343 6467", "ssn": "401-23-4567", "api_key": "sk-live-9fQ2xLmP4rT8vW1yZ3bN6cD0",
    "aws": "AKIAIOSFODNN7EXAMPLE", "password": "password=Tr0ub4dor&3",
}
LLM_CHUNKS = 6


def _planted_doc(folder: Path) -> None:
    folder.mkdir()
    (folder / "payroll-contacts.md").write_text(
        "# Payroll contacts\n\n"
        f"The payroll contact is Maria Lopez, reachable at {PLANTED['email']} or {PLANTED['phone']}.\n"
        f"Salaries are paid from the account {PLANTED['iban']} on the 25th of each month.\n"
        f"The travel card number is {PLANTED['card']} and it must never be shared.\n"
        f"The test employee record uses the social security number {PLANTED['ssn']}.\n"
        f"The payroll export key is {PLANTED['api_key']} and the storage key is {PLANTED['aws']}.\n"
        f"The legacy portal login uses {PLANTED['password']} until March 31, 2024.\n")


def _rate(n: int, seconds: float) -> float:
    return 60.0 * n / seconds if seconds else float("inf")


@pytest.mark.benchmark
@pytest.mark.timeout(3600)
def test_bench_synth_contoso(tmp_path, fake_openai):  # noqa: F811
    if not (DATA / "data").is_dir():
        pytest.skip(f"{DATA} not present; the benchmark needs the shared data sets")
    _planted_doc(tmp_path / "planted")
    cfg = {"workspace": str(tmp_path / "ws"),
           "sources": [{"name": "contoso", "type": "files", "path": str(DATA / "data"), "public": True,
                        "exclude": ["role_library.pdf"]},
                       {"name": "restricted", "type": "files", "path": str(DATA / "data"),
                        "include": ["role_library.pdf"], "acl": ["hr"]},
                       {"name": "planted", "type": "files", "path": str(tmp_path / "planted"), "public": True}],
           "dataset": {"name": "contoso"}}
    project = Project(load_config_dict(cfg), show_progress=False)
    start = time.perf_counter()
    report = project.ingest().to_dict()
    print(f"\ningest: {time.perf_counter() - start:.1f}s, {report['documents']}, {project.index.count()} chunks")

    start = time.perf_counter()
    card = project.synthesize()
    wall = time.perf_counter() - start
    rt = card.round_trip
    print(json.dumps({k: card.to_dict()[k] for k in ("chunks", "generated", "generated_by_generator", "dropped", "kept",
                                           "split", "round_trip", "pii", "incremental", "seconds")}, indent=1))
    start = time.perf_counter()
    again = project.synthesize()
    incremental_s = time.perf_counter() - start

    chunks = [c for c in project.index.rows() if c.doc_id.startswith("contoso:")]
    chunks.sort(key=lambda c: c.id)
    start = time.perf_counter()
    pairs, stats = llm_pairs(project.generator, [c.text for c in chunks[:LLM_CHUNKS]], max_new_tokens=96)
    flat = [p for ps in pairs for p in ps or []]
    variants, pstats = llm_paraphrases(project.generator, flat, 2, max_new_tokens=96)
    bundled_s, bundled_n = time.perf_counter() - start, len(flat) + sum(map(len, variants))

    teacher = OpenAICompatibleTeacher(f"http://127.0.0.1:{fake_openai.server_address[1]}/v1", model="fake")
    start = time.perf_counter()
    api_pairs, api_stats = llm_pairs(teacher, [c.text for c in chunks[:300]])
    api_flat = [p for ps in api_pairs for p in ps or []]
    api_variants, _ = llm_paraphrases(teacher, api_flat, 2)
    api_s, api_n = time.perf_counter() - start, len(api_flat) + sum(map(len, api_variants))

    extractive = _rate(card.generated, card.seconds["generate"])
    rows = [("extractive (generation only)", card.generated, card.seconds["generate"], extractive),
            ("extractive (whole synth, kept)", card.kept, wall, _rate(card.kept, wall)),
            (f"bundled SmolLM2 ({LLM_CHUNKS} chunks)", bundled_n, bundled_s, _rate(bundled_n, bundled_s)),
            ("OpenAI-compatible fake (300 chunks)", api_n, api_s, _rate(api_n, api_s))]
    print(f"\n{'generator':<38} {'examples':>8} {'seconds':>8} {'per min':>10} {'vs extractive':>13}")
    for name, n, s, r in rows:
        print(f"{name:<38} {n:>8} {s:>8.1f} {r:>10.0f} {r / extractive:>13.4f}")
    print(f"bundled: {dict(stats)} {dict(pstats)}; api: {dict(api_stats)}")
    print(f"incremental re-run: {incremental_s:.1f}s, {again['incremental']}")
    print(f"round trip before the filter: {rt['passed']}/{rt['checked']} = {rt['passed'] / rt['checked']:.3f}")

    findings = sorted({(k, c.text[a:b]) for c in chunks for a, b, k in Scrubber().find(c.text)})
    print(f"PII findings in the contoso chunks (false positives show here): {findings}")

    folder = project.dataset_dir()
    text = "".join(p.read_text() for p in folder.iterdir() if p.is_file())
    assert not [k for k, v in PLANTED.items() if v in text], "planted PII reached the dataset"
    assert "restricted:" not in text and "role_library" not in text
    assert card.split["eval_by_kind"].get("heldout_document") and card.split["eval_by_kind"].get("paraphrase")
    assert set(card.dropped) >= {"too_short", "too_long", "unsupported_answer", "duplicate", "near_duplicate",
                                    "round_trip"}
    assert again.incremental["chunks_generated"] == 0
