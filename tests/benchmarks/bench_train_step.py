"""One LoRA training step of SmolLM2, precision variants interleaved (opt in: -m benchmark).

    pytest tests/benchmarks/bench_train_step.py -m benchmark -s
    BENCH_BATCH=16 BENCH_VARIANTS=fp32,autocast,bf16base,bf16base_compile pytest ... -m benchmark -s

A finer tool than bench_train.py for trying speed-ups: it times forward + backward +
AdamW on the same packed demo batches for every variant in turn (batch 1 with variant A,
then B, then C, then batch 2 ...), so a burst of other load on a shared machine hits
every variant alike. Reports the median tokens/s over batches 2 to 6 (batch 1 builds the
kernels). Variants: fp32; autocast (fp32 weights, bf16 autocast); bf16base (bf16 frozen
base, fp32 LoRA, bf16 autocast); a `_compile` suffix wraps the model in torch.compile.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import pytest
import torch

from framework.cli.demo import demo_dir
from framework.project import Project, load_config
from framework.training.lora import AnswerOnlyPackedCollator, tokenize_rows

BATCH = int(os.environ.get("BENCH_BATCH", "8"))
VARIANTS = os.environ.get("BENCH_VARIANTS", "fp32,autocast,bf16base").split(",")


def _build(variant: str, model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if variant.startswith("bf16base") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    if variant.endswith("_compile"):
        model = torch.compile(model)
    return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)


def _step(variant: str, model, opt, batch) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant != "fp32"):
        loss = model(**batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad()


@pytest.mark.benchmark
def test_bench_train_step_variants(tmp_path):
    from transformers import AutoTokenizer

    cfg = load_config(demo_dir() / "ragtune.yaml", [f"workspace={tmp_path / 'ws'}", "index.embedder=hashing"])
    project = Project(cfg, show_progress=False)
    project.ingest()
    project.synthesize()
    rows = [json.loads(x) for x in (project.dataset_dir() / "train.jsonl").read_text().splitlines()]
    items, _ = tokenize_rows(AutoTokenizer.from_pretrained(project.base_model_dir), rows, cfg.finetune.max_length)
    collate = AnswerOnlyPackedCollator()
    batches = [collate(items[i:i + BATCH]) for i in range(0, BATCH * 6, BATCH)]
    models = {v: _build(v, project.base_model_dir) for v in VARIANTS}
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for i, batch in enumerate(batches):
        n = batch["input_ids"].numel()
        for v in VARIANTS:
            start = time.perf_counter()
            _step(v, *models[v], batch)
            seconds = time.perf_counter() - start
            print(f"batch {i} {v:<18} {n:>5} tokens {seconds:7.2f} s {n / seconds:7.1f} tokens/s", flush=True)
            if i:
                rates[v].append(n / seconds)
    base = statistics.median(rates[VARIANTS[0]])
    print(f"\nbatch {BATCH} examples, torch threads {torch.get_num_threads()}; median tokens/s, batches 2-6")
    for v in VARIANTS:
        med = statistics.median(rates[v])
        print(f"{v:<18} {med:7.1f}  x{med / base:.2f}")
    assert all(rates[v] for v in VARIANTS)
