"""How long `ragtune finetune` will take, before it starts: examples, tokens, and this machine's speed.

Tokens are counted exactly: every training row is tokenized as training will tokenize it
(prompt and answer, RAFT context trimmed to fit `finetune.max_length`, rows that still do
not fit left out and counted per mode: framework.training.fitting). Speed is measured, not
assumed: the same LoRA setup (model, precision, packing, batch size) runs a few real
optimizer steps on this run's own batches, the first step (which builds the kernels)
is left out, and the tokens/s of the others gives the estimate. The measurement's
adapter is thrown away. Machines differ by 10x (bf16 units, cores, other load), which is
why no table of speeds could replace it.

Example:
    >>> est = TrainingEstimate(examples=200, skipped_too_long=0, tokens_per_epoch=30000, epochs=3.0, steps=75,
    ...                        tokens=90000, tokens_per_second=150.0, measured_steps=2)
    >>> est.seconds, est.duration
    (600.0, '10 min 0 s')
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import TrainerCallback

from framework.config import FinetuneConfig


@dataclass(frozen=True)
class TrainingEstimate:
    examples: int
    skipped_too_long: int
    tokens_per_epoch: int
    epochs: float
    steps: int
    tokens: int
    tokens_per_second: float
    measured_steps: int
    rows: dict | None = None  # framework.training.fitting.FitReport.to_dict(): trimmed and dropped per mode
    problem: str | None = None  # why training would not start (too many rows dropped)

    @property
    def seconds(self) -> float:
        return round(self.tokens / self.tokens_per_second, 1) if self.tokens_per_second else float("inf")

    @property
    def duration(self) -> str:
        if math.isinf(self.seconds):
            return "unknown"
        minutes, seconds = divmod(round(self.seconds), 60)
        return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"

    def describe(self) -> str:
        return (f"finetune estimate: {self.examples} examples ({self.skipped_too_long} too long), "
                f"{self.tokens_per_epoch:,} tokens per epoch x {self.epochs:g} epochs = {self.tokens:,} tokens in "
                f"{self.steps} steps; {self.tokens_per_second:.0f} tokens/s measured on this machine over "
                f"{self.measured_steps} real training steps (after 1 warm-up step) -> about {self.duration} of "
                "training, plus model loading" + self._rows_line())

    def _rows_line(self) -> str:
        if not self.rows:
            return ""
        per_mode = "; ".join(f"{mode} {m['rows']} ({m['trimmed']} trimmed to fit, {m['dropped']} dropped)"
                             for mode, m in sorted(self.rows["by_mode"].items()))
        line = f"\nrows per mode at max_length {self.rows['max_length']}: {per_mode}"
        return line + (f"\nthis run would stop before training: {self.problem}" if self.problem else "")

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds": self.seconds}


class _StepTimer(TrainerCallback):
    """Tokens and seconds of every optimizer step after the first."""

    def __init__(self) -> None:
        self.tokens, self.seconds, self._t0, self._n0 = 0, 0.0, 0.0, 0

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0, self._n0 = time.perf_counter(), state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step > 1:
            self.tokens += state.num_input_tokens_seen - self._n0
            self.seconds += time.perf_counter() - self._t0


def measure_tokens_per_second(model_dir: Path, rows: list[dict], cfg: FinetuneConfig, *, bf16: bool,
                              steps: int = 2, device: str | None = None) -> float:
    """Tokens/s of `steps` real LoRA training steps (after one warm-up step) on `rows`; nothing is kept."""
    from framework.training.lora import train_lora

    probe = cfg.model_copy(update={"max_steps": steps + 1, "save_steps": 0, "early_stopping_patience": 0,
                                   "report_to": [], "max_dropped_fraction": 1.0, "knowledge_probes": 0})
    timer = _StepTimer()
    with tempfile.TemporaryDirectory(prefix="ragtune-estimate-") as tmp:
        train_lora(model_dir, rows, [], probe, Path(tmp) / "adapter", bf16=bf16, checkpoint_dir=Path(tmp) / "ckpt",
                   show_progress=False, callbacks=[timer], device=device)
    return timer.tokens / timer.seconds if timer.seconds else 0.0


def estimate_training(*, rows: list[dict], model_dir: Path, cfg: FinetuneConfig, bf16: bool,
                      measure_steps: int = 2, device: str | None = None) -> TrainingEstimate:
    """Examples, tokens and measured speed of training `cfg` on these chat rows (train.jsonl)."""
    from transformers import AutoTokenizer

    from framework.training.fitting import fit_training_rows

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    items, fit = fit_training_rows(tokenizer, model_dir, rows, cfg, check=False)
    skipped = fit.dropped
    if not items:
        raise ValueError("no training example fits finetune.max_length; raise it or shorten the examples")
    per_epoch = sum(len(i["input_ids"]) for i in items)
    steps_per_epoch = math.ceil(len(items) / (cfg.batch_size * cfg.gradient_accumulation))
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    epochs = steps / steps_per_epoch if cfg.max_steps > 0 else cfg.epochs
    speed = measure_tokens_per_second(model_dir, rows, cfg, bf16=bf16, steps=measure_steps, device=device)
    return TrainingEstimate(examples=len(items), skipped_too_long=skipped, tokens_per_epoch=per_epoch,
                            epochs=round(epochs, 2), steps=steps, tokens=round(per_epoch * epochs),
                            tokens_per_second=round(speed, 1), measured_steps=measure_steps,
                            rows=fit.to_dict(), problem=fit.problem(cfg.max_dropped_fraction))
