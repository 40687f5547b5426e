"""Equal answers under batching, and what they cost (opt in: -m benchmark).

    pytest tests/benchmarks/bench_determinism.py -m benchmark -s -p no:cacheprovider

Builds the demo project (bundled MiniLM embedder, bundled SmolLM2-135M generator, shipped `generator`
defaults: max_new_tokens 96, max_sentences 3, no_repeat_ngram_size 4, batch_size 8), plans 32 demo
questions (half `rag`, half `prompt_only`) once, then for each option, in this one process:

- one by one: each request submitted to the generation worker after the previous one is answered
  (answers/s of serving without batching);
- concurrent: the same requests submitted at once from 32 threads (micro-batches form as in `serve`);
- equality: how many concurrent answers equal their one-by-one answer (text and token count).

Options: precision bf16 and fp32, each with `generator.pad_multiple` 0 (the batch's prompts padded to
its longest: what serving did before) and the shipped 64 (and any of BENCH_DET_PAD, comma-separated).
Sizes from the environment: BENCH_DET_REQUESTS (default 32), BENCH_DET_PRECISIONS (default bf16,fp32),
BENCH_DET_WORKSPACE (reuse a workspace's index).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from framework.cli.demo import demo_dir
from framework.config import GeneratorConfig
from framework.evaluation.questions import load_questions
from framework.project import Project, load_config
from framework.records import Principal
from framework.runtime.precision import cpu_bf16_flags, resolve_dtype
from framework.serving.generator import HFGenerator
from framework.serving.worker import GenerationWorker

REQUESTS = int(os.environ.get("BENCH_DET_REQUESTS", "32"))
PRECISIONS = os.environ.get("BENCH_DET_PRECISIONS", "bf16,fp32").split(",")
PADS = sorted({0, GeneratorConfig().pad_multiple, *(int(p) for p in os.environ.get("BENCH_DET_PAD", "").split(",")
                                                    if p)})


def _conversations(tmp_path: Path) -> tuple[Project, list[list[dict]]]:
    ws = os.environ.get("BENCH_DET_WORKSPACE") or str(tmp_path / "ws")
    shipped = GeneratorConfig()  # the demo answers in one sentence of 48 tokens; serve what ships
    overrides = [f"workspace={ws}", f"generator.max_new_tokens={shipped.max_new_tokens}",
                 f"generator.max_sentences={shipped.max_sentences}", f"generator.batch_size={shipped.batch_size}"]
    project = Project(load_config(demo_dir() / "ragtune.yaml", overrides), show_progress=False)
    project.ingest()
    questions = [r["question"] for r in load_questions(demo_dir() / "questions.jsonl")]
    who = Principal(user="bench", groups=("everyone",))
    plans = [project.router.plan(questions[i % len(questions)], ("rag", "prompt_only")[i % 2], "bench", who)
             for i in range(REQUESTS)]
    return project, [p.conversation for p in plans]


def _measure(worker: GenerationWorker, conversations: list[list[dict]], budget: int) -> dict:
    start = time.perf_counter()
    alone = [worker.submit(c, adapter=None, max_new_tokens=budget).result() for c in conversations]
    serial_s = time.perf_counter() - start
    barrier = threading.Barrier(len(conversations))

    def ask(c):
        barrier.wait()
        return worker.submit(c, adapter=None, max_new_tokens=budget).result()

    before = sum(worker.batch_sizes.values())
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(conversations)) as pool:
        burst = list(pool.map(ask, conversations))
    burst_s = time.perf_counter() - start
    equal = sum((a.text, a.tokens) == (b.text, b.tokens) for a, b in zip(alone, burst))
    return {"equal": equal, "serial": len(alone) / serial_s, "burst": len(burst) / burst_s,
            "batches": sum(worker.batch_sizes.values()) - before}


@pytest.mark.benchmark
@pytest.mark.timeout(5400)  # four options x 32 requests twice on the bundled model: past the default 15 minutes
def test_bench_determinism(tmp_path):
    project, conversations = _conversations(tmp_path)
    g = project.config.generator
    rows = []
    for precision in PRECISIONS:
        gen = HFGenerator.from_config(project.base_model_dir, g, precision=precision)
        gen.complete(conversations[:2], max_new_tokens=4)  # warm up the kernels
        for pad in PADS:
            gen.pad_multiple = pad
            worker = GenerationWorker(gen, max_batch=g.batch_size)
            rows.append((precision, resolve_dtype(precision), pad, _measure(worker, conversations, g.max_new_tokens)))
            worker.close()
        del gen
    print(f"\nbench_determinism: SmolLM2-135M (bundled), {len(conversations)} requests (half rag, half prompt_only), "
          f"max_new_tokens {g.max_new_tokens}, worker batch <= {g.batch_size}, torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs, CPU bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'}, "
          f"python {sys.version.split()[0]}, torch {torch.__version__}")
    print("| precision | pad_multiple | concurrent = one by one | answers/s one by one | answers/s concurrent |")
    print("|---|---|---|---|---|")
    for precision, dtype, pad, m in rows:
        print(f"| {precision} ({str(dtype).removeprefix('torch.')}) | {pad} | {m['equal']}/{len(conversations)} | "
              f"{m['serial']:.2f} | {m['burst']:.2f} |")
    assert all(m["burst"] > 0 for *_, m in rows)
