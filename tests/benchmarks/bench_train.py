"""LoRA training speed on this CPU: fp32 against bf16, same data, same steps (opt in: -m benchmark).

    pytest tests/benchmarks/bench_train.py -m benchmark -s

Trains the bundled SmolLM2-135M-Instruct on the demo's finetuning set (extractive
questions; the hashing embedder picks the RAFT distractors, so no embedding model is
needed) for BENCH_STEPS optimizer steps in each setting, in one process:

- fp32: fp32 weights, no autocast (the baseline);
- bf16 autocast: fp32 base weights, bf16 autocast (what `precision: bf16` / `auto` trains with);
- bf16 base: bf16 frozen base weights, fp32 LoRA weights, bf16 autocast
  (`finetune.base_precision: bf16`).

Tokens/s counts steady-state steps only (the first two steps, which create the kernels,
are left out): the total over those steps, and the median of the per-step rates, which
resists bursts of other load on a shared machine. Eval loss is on the demo's eval split after the same steps.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import pytest
import torch
from transformers import TrainerCallback

from framework.cli.demo import demo_dir
from framework.project import Project, load_config
from framework.training.lora import train_lora

STEPS = int(os.environ.get("BENCH_STEPS", "20"))
SKIP = 2
SETTINGS = {  # name -> (bf16 autocast, finetune.base_precision)
    "fp32": (False, "fp32"),
    "bf16 autocast": (True, "fp32"),
    "bf16 base": (True, "bf16"),
}


class SteadyState(TrainerCallback):
    """Tokens/s of each step after the first SKIP; the median resists bursts of other load on the machine."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.tokens, self.seconds, self.t0, self.n0 = 0, 0.0, 0.0, 0

    def on_step_begin(self, args, state, control, **kwargs):
        self.t0, self.n0 = time.perf_counter(), state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step > SKIP:
            tokens, seconds = state.num_input_tokens_seen - self.n0, time.perf_counter() - self.t0
            self.tokens += tokens
            self.seconds += seconds
            self.rates.append(tokens / seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


@pytest.mark.benchmark
def test_bench_train_fp32_vs_bf16(tmp_path):
    overrides = [f"workspace={tmp_path / 'ws'}", "index.embedder=hashing", "precision=fp32",
                 f"finetune.max_steps={STEPS}", "finetune.save_steps=0"]
    project = Project(load_config(demo_dir() / "ragtune.yaml", overrides), show_progress=False)
    project.ingest()
    project.synthesize()
    folder = project.dataset_dir()
    train = [json.loads(x) for x in (folder / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(x) for x in (folder / "eval.jsonl").read_text().splitlines()]
    rows = {}
    for name, (bf16, base) in SETTINGS.items():
        cfg = project.config.finetune.model_copy(update={"base_precision": base})
        meter = SteadyState()
        m = train_lora(project.base_model_dir, train, evals, cfg, tmp_path / name.replace(" ", "-"), bf16=bf16,
                       checkpoint_dir=tmp_path / "ckpt", show_progress=False, callbacks=[meter])
        rows[name] = {"tok_s": meter.tokens / meter.seconds, "median": meter.median, "eval_loss": m["eval_loss"]}
    base = rows["fp32"]
    print(f"\nSmolLM2-135M LoRA r={cfg.rank} all-linear, {STEPS} steps x batch {cfg.batch_size}, "
          f"{len(train)} train / {len(evals)} eval examples, torch threads {torch.get_num_threads()}")
    print(f"{'setting':<15} {'tokens/s':>9} {'x fp32':>7} {'median/step':>12} {'x fp32':>7} {'eval loss':>10} "
          f"{'vs fp32':>8}")
    for name, r in rows.items():
        print(f"{name:<15} {r['tok_s']:>9.1f} {r['tok_s'] / base['tok_s']:>7.2f} {r['median']:>12.1f} "
              f"{r['median'] / base['median']:>7.2f} {r['eval_loss']:>10.4f} "
              f"{100 * (r['eval_loss'] - base['eval_loss']) / base['eval_loss']:>+7.2f}%")
    assert all(r["tok_s"] > 0 and r["eval_loss"] > 0 for r in rows.values())
