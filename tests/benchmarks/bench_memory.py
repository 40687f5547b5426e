"""The training memory estimate against the measured peak resident memory (opt in: -m benchmark).

    pytest tests/benchmarks/bench_memory.py -m benchmark -s

Synthesizes the demo's training set (hashing embedder), takes its `batch_size` longest
rows (the batch the estimate sizes the peak by) and, in a fresh process per setting so
that each peak is its own, trains the bundled SmolLM2-135M-Instruct on exactly those
rows for 3 steps with the demo's LoRA settings; the process's peak resident memory
(ru_maxrss) is compared with `framework.training.memory.estimate_memory` for the same
rows. Settings: the demo's (packed, batch 8), half the batch with twice the accumulation,
no LoRA dropout, gradient checkpointing, padded batches; bf16 autocast where the CPU has
bf16 units. Target: within 25%. Tokens/s over 3 steps is only a rough guide (2 of them
timed, on a shared machine).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

SETTINGS = {  # name -> finetune overrides (the demo's: batch 8, packed, fp32 base under bf16 autocast)
    "packed, batch 8 (demo)": {"packing": True, "gradient_checkpointing": False},
    "packed, batch 4 x accumulation 2": {"batch_size": 4, "gradient_accumulation": 2, "gradient_checkpointing": False},
    "packed, batch 8, LoRA dropout 0": {"dropout": 0.0, "gradient_checkpointing": False},
    "packed, batch 8, checkpointing": {"packing": True, "gradient_checkpointing": True},
    "padded, batch 8": {"packing": False, "gradient_checkpointing": False},
}


def _measure(model_dir: str, rows_file: str, overrides: dict, out: str) -> dict:
    """Runs in a child process: train 3 steps, return the peak RSS and the estimate."""
    import torch
    from transformers import AutoTokenizer

    from framework.config import FinetuneConfig
    from framework.runtime.precision import resolve_dtype
    from framework.training.lora import tokenize_rows, train_lora
    from framework.training.memory import estimate_memory

    rows = [json.loads(x) for x in Path(rows_file).read_text().splitlines()]
    cfg = FinetuneConfig(**{"adapter": "demo", "rank": 32, "alpha": 64, "learning_rate": 0.002, "batch_size": len(rows),
                            "max_length": 640, "max_steps": 3, "save_steps": 0, **overrides})
    bf16 = resolve_dtype("auto", "cpu") == torch.bfloat16
    items, _ = tokenize_rows(AutoTokenizer.from_pretrained(model_dir), rows, cfg.max_length)
    est = estimate_memory(Path(model_dir), cfg, bf16=bf16, device="cpu", items=items, device_bytes=1 << 40)
    m = train_lora(Path(model_dir), rows, [], cfg, Path(out) / "adapter", bf16=bf16,
                   checkpoint_dir=Path(out) / "ckpt", show_progress=False, device="cpu")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak": peak, "estimate": est.total_bytes, "tokens": est.tokens_per_step, "bf16": bf16,
            "tokens_per_second": m["tokens_per_second"],
            "parts": {k: v for k, v in est.to_dict().items() if k.endswith("_bytes")}}


@pytest.mark.benchmark
@pytest.mark.timeout(3600)  # five trainings of the bundled model: about 5 minutes each on a shared 2-core machine
def test_bench_memory_estimate_against_peak_rss(tmp_path):
    from framework.cli.demo import demo_dir
    from framework.project import Project, load_config

    project = Project(load_config(demo_dir() / "ragtune.yaml", [f"workspace={tmp_path / 'ws'}",
                                                                "index.embedder=hashing"]), show_progress=False)
    project.ingest()
    project.synthesize()
    rows = [json.loads(x) for x in (project.dataset_dir() / "train.jsonl").read_text().splitlines()]
    from transformers import AutoTokenizer

    from framework.training.lora import tokenize_example

    tok = AutoTokenizer.from_pretrained(project.base_model_dir)
    length = {id(r): len((tokenize_example(tok, r["messages"], 10**6) or {"input_ids": []})["input_ids"]) for r in rows}
    longest = sorted((r for r in rows if length[id(r)] <= project.config.finetune.max_length),
                     key=lambda r: -length[id(r)])
    batch = project.config.finetune.batch_size
    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text("\n".join(json.dumps(r) for r in longest[:batch]))
    print(f"\nbundled SmolLM2-135M, LoRA r=32 all-linear, the demo's {batch} longest training rows, 3 steps, "
          "one fresh process per setting")
    print(f"{'setting':<34} {'tokens/step':>11} {'estimate GB':>12} {'peak RSS GB':>12} {'error':>7} {'tok/s':>6}")
    errors = []
    for name, overrides in SETTINGS.items():
        code = (f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_memory as b; "
                f"print('RESULT', json.dumps(b._measure({str(project.base_model_dir)!r}, {str(rows_file)!r}, "
                f"{overrides!r}, {str(tmp_path / name.replace(' ', '_'))!r})))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert done.returncode == 0, done.stderr[-2000:]
        r = json.loads(done.stdout.split("RESULT", 1)[1])
        error = (r["estimate"] - r["peak"]) / r["peak"]
        errors.append(error)
        print(f"{name:<34} {r['tokens']:>11,} {r['estimate'] / 2**30:>12.2f} {r['peak'] / 2**30:>12.2f} "
              f"{100 * error:>+6.1f}% {r['tokens_per_second']:>6.0f}   {json.dumps({k: round(v / 2**20) for k, v in r['parts'].items()})} MB")
    assert all(abs(e) <= 0.25 for e in errors), errors
