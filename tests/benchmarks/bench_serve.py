"""Serving speed through the live HTTP server, bundled models (opt in: -m benchmark).

    pytest tests/benchmarks/bench_serve.py -m benchmark -s

Builds the demo project (framework/demo: bundled MiniLM embedder and SmolLM2-135M generator),
trains a short adapter so every mode answers, starts `ragtune serve`'s app on 127.0.0.1 and:

- latency per mode at concurrency 1: p50/p95 over HTTP, and p50 of a direct `project.ask`
  (the same router and worker, no HTTP) for the server's overhead;
- throughput (answers/s) for one list of mixed-mode requests sent at concurrency 1, 4 and 8.

Targets (issue 13): throughput at concurrency 8 >= 3x concurrency 1; HTTP p50 at concurrency 1
within 10% of direct. Sizes come from the environment so a smoke run stays small:
BENCH_SERVE_REQUESTS (per mode for latency, and 8x as many mixed requests per concurrency level;
default 10), BENCH_SERVE_TOKENS (generator.max_new_tokens, default 48), BENCH_SERVE_TRAIN_STEPS
(default 30), BENCH_SERVE_WORKSPACE (reuse a workspace: the model conversion and the adapter).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

from framework.cli.demo import demo_dir
from framework.config import ServeConfig, TokenConfig
from framework.evaluation.questions import load_questions
from framework.project import Project, load_config
from framework.records import ANSWER_MODES, Principal
from framework.serving.auth import TokenTable
from framework.serving.server import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asgi_server import serving  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_SERVE_REQUESTS", "10"))
TOKENS = int(os.environ.get("BENCH_SERVE_TOKENS", "48"))
TRAIN_STEPS = int(os.environ.get("BENCH_SERVE_TRAIN_STEPS", "30"))
LEVELS = (1, 4, 8)


def _project(tmp_path: Path) -> Project:
    ws = os.environ.get("BENCH_SERVE_WORKSPACE") or str(tmp_path / "ws")
    overrides = [f"workspace={ws}", f"generator.max_new_tokens={TOKENS}", "generator.batch_size=8",
                 f"finetune.max_steps={TRAIN_STEPS}", "finetune.save_steps=0"]
    project = Project(load_config(demo_dir() / "ragtune.yaml", overrides), show_progress=False)
    project.ingest()
    if not project.adapters.promoted("demo"):
        project.synthesize()
        project.finetune(promote=True)
    return project


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@pytest.mark.benchmark
def test_bench_serve(tmp_path):
    project = _project(tmp_path)
    questions = [r["question"] for r in load_questions(demo_dir() / "questions.jsonl")]
    principal = Principal(user="bench", groups=("everyone",))
    token = TokenConfig(user="bench", groups=["everyone"], token_env="BENCH_TOKEN")
    app = create_app(project.router, ServeConfig(tokens=[token]),
                     tokens=TokenTable.from_config([token], environ={"BENCH_TOKEN": "t"}))
    mixed = [(ANSWER_MODES[i % 4], questions[i % len(questions)]) for i in range(8 * REQUESTS)]
    with serving(app) as url, httpx.Client(timeout=600, headers={"authorization": "Bearer t"}) as client:

        def http(mode: str, question: str) -> float:
            start = time.perf_counter()
            reply = client.post(f"{url}/v1/chat/completions",
                                json={"model": mode, "messages": [{"role": "user", "content": question}]})
            assert reply.status_code == 200, reply.text
            return time.perf_counter() - start

        def direct(mode: str, question: str) -> float:
            start = time.perf_counter()
            project.ask_many([question], mode=mode, principal=principal)
            return time.perf_counter() - start

        for mode in ANSWER_MODES:  # warm up: adapter load, BM25, first kernels
            http(mode, questions[0])
        latency = {}
        for mode in ANSWER_MODES:
            asked = questions[:REQUESTS]
            latency[mode] = ([direct(mode, q) for q in asked], [http(mode, q) for q in asked])
        throughput = {}
        for level in LEVELS:
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=level) as pool:
                list(pool.map(lambda r: http(*r), mixed))
            throughput[level] = len(mixed) / (time.perf_counter() - start)
    print(f"\nbench_serve: SmolLM2-135M (bundled), max_new_tokens {TOKENS}, micro-batch <= 8, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs; {REQUESTS} requests per mode, "
          f"{len(mixed)} mixed requests per concurrency level")
    print(f"{'mode':<12} {'direct p50':>10} {'http p50':>9} {'http p95':>9} {'http/direct':>11}")
    overhead = []
    for mode, (d, h) in latency.items():
        ratio = statistics.median(h) / statistics.median(d)
        overhead.append(ratio)
        print(f"{mode:<12} {statistics.median(d):>10.3f} {statistics.median(h):>9.3f} {_pct(h, 0.95):>9.3f} "
              f"{ratio:>11.3f}")
    print("throughput (answers/s, mixed modes): " + ", ".join(f"c={c}: {t:.2f}" for c, t in throughput.items()))
    print(f"ratios: c8/c1 = {throughput[8] / throughput[1]:.2f} (target >= 3); HTTP p50 / direct p50 at c=1: "
          f"worst {max(overhead):.3f} (target <= 1.10)")
    assert all(t > 0 for t in throughput.values())
