"""Which epoch's adapter is kept: the best on the held-out knowledge check, not simply the last.

`KnowledgeCallback` runs the knowledge check (framework.training.knowledge) on the base
model before training and after every epoch, saves that epoch's LoRA weights beside the
checkpoints (a few MB each), and stops training once `finetune.knowledge_patience` epochs
in a row did not beat the best accuracy so far. `choose` then picks, per `finetune.keep`:
`best_knowledge` (highest accuracy, ties to the lower eval loss, then the earlier epoch),
`best_eval_loss`, or `last`. Records live in the checkpoint folder, so a resumed run
chooses among every epoch, also those before the interruption.

Example:
    >>> records = [{"step": 10, "accuracy": 0.2, "eval_loss": 0.9}, {"step": 20, "accuracy": 0.2, "eval_loss": 0.8}]
    >>> choose(records, keep="best_knowledge")["step"], choose(records, keep="last")["step"]
    (20, 20)
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Sequence

from transformers import TrainerCallback

from framework.config import FinetuneConfig
from framework.training.knowledge import check

log = logging.getLogger(__name__)


def choose(records: Sequence[dict], *, keep: str) -> dict | None:
    """The record of the epoch to keep; None without records."""
    if not records:
        return None
    no_accuracy = all(r.get("accuracy") is None for r in records)
    if keep == "last" or (all(r.get("eval_loss") is None for r in records) and
                          (keep == "best_eval_loss" or no_accuracy)):
        return records[-1]  # asked for, or nothing to judge by
    loss = (lambda r: r["eval_loss"] if r.get("eval_loss") is not None else float("inf"))
    if keep == "best_eval_loss" or no_accuracy:
        return min(records, key=lambda r: (loss(r), r["step"]))
    return min(records, key=lambda r: (-(r.get("accuracy") or 0.0), loss(r), r["step"]))


class KnowledgeCallback(TrainerCallback):
    """The knowledge check before training and after each epoch, with each epoch's weights kept aside."""

    def __init__(self, probes: Sequence[dict], tokenizer, cfg: FinetuneConfig, folder: Path) -> None:
        self.probes, self.tokenizer, self.cfg, self.folder = list(probes), tokenizer, cfg, folder
        self.file = folder / "epochs.json"
        saved = json.loads(self.file.read_text()) if self.file.is_file() else {}
        self.base, self.records = saved.get("base"), saved.get("epochs", [])

    def _check(self, model) -> dict:
        return check(model, self.tokenizer, self.probes, max_new_tokens=self.cfg.knowledge_max_new_tokens,
                     seed=self.cfg.seed)

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file.write_text(json.dumps({"base": self.base, "epochs": self.records}, indent=2))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.base is None and state.global_step == 0 and self.probes:
            with model.disable_adapter():
                self.base = self._check(model)
            log.info("knowledge check, base model: %s of %s probes", self.base["hits"], self.base["probes"])
            self._save()

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self._record(state, model)
        best = max((r["accuracy"] or 0.0 for r in self.records), default=0.0)
        since = next((i for i, r in enumerate(reversed(self.records)) if (r["accuracy"] or 0.0) >= best), 0)
        patience = self.cfg.knowledge_patience
        if self.cfg.keep == "best_knowledge" and patience and since >= patience and self.probes:
            log.info("knowledge check: no better for %d epoch(s); stopping (finetune.knowledge_patience)", since)
            control.should_training_stop = True

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not self.records or self.records[-1]["step"] != state.global_step:
            self._record(state, model)

    def _record(self, state, model) -> None:
        result = self._check(model) if self.probes else {"accuracy": None, "hits": 0, "probes": 0}
        weights = self.folder / f"epoch-{state.global_step}"
        if self.cfg.keep != "last":
            model.save_pretrained(str(weights))
        self.records.append({"epoch": round(float(state.epoch or 0), 2), "step": state.global_step,
                             "weights": str(weights), **result})
        log.info("knowledge check, epoch %.2f: %s of %s probes", state.epoch or 0, result["hits"], result["probes"])
        self._save()

    def finish(self, log_history: Sequence[dict]) -> dict | None:
        """Join each epoch's eval loss and return the record `finetune.keep` chooses."""
        losses = {h["step"]: h["eval_loss"] for h in log_history if "eval_loss" in h}
        for r in self.records:
            r["eval_loss"] = losses.get(r["step"])
        self._save()
        return choose(self.records, keep=self.cfg.keep)


def keep_weights(record: dict, out_dir: Path) -> None:
    """Publish the chosen epoch's saved adapter files into `out_dir`."""
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.copytree(record["weights"], out_dir)


def knowledge_summary(callback: KnowledgeCallback, kept: dict | None, *, final_step: int) -> dict:
    """What the manifest stores: the check on the base and per epoch, and the epoch kept (with its verdicts)."""
    epochs = [{k: r.get(k) for k in ("epoch", "step", "accuracy", "low", "high", "hits", "probes", "eval_loss")}
              for r in callback.records]
    out = {"method": "closed-book key-span recall on held-out rewordings of trained facts "
                     "(framework.training.rewording)", "keep": callback.cfg.keep, "base": _brief(callback.base),
           "per_epoch": epochs}
    if kept is not None:
        out.update({"kept_epoch": kept["epoch"], "kept_step": kept["step"], "last_step": final_step,
                    **{k: kept.get(k) for k in ("accuracy", "low", "high", "hits", "probes", "documents")}})
    return out


def _brief(result: dict | None) -> dict | None:
    return None if result is None else {k: result.get(k) for k in ("accuracy", "low", "high", "hits", "probes")}


def knowledge_callback(train_rows: Sequence[dict], model_dir: Path, cfg: FinetuneConfig, checkpoint_dir: Path,
                       *, world_size: int = 1) -> KnowledgeCallback | None:
    """The callback for a run, or None when the check is off (`finetune.knowledge_probes: 0`) or the run is
    distributed (each process would answer the probes; the check runs in single-process training)."""
    from transformers import AutoTokenizer

    from framework.training.knowledge import build_probes, question_file_probes

    if cfg.knowledge_probes == 0 or world_size > 1:
        return None
    probes = build_probes(train_rows, limit=cfg.knowledge_probes, seed=cfg.seed)
    if cfg.knowledge_questions:
        path = Path(cfg.knowledge_questions)
        if not path.is_file():
            raise FileNotFoundError(f"finetune.knowledge_questions: no file {path} (JSONL rows with question, answer "
                                    "and document); fix the path or remove the key")
        probes += question_file_probes(path, sorted({r["doc_id"] for r in train_rows if r.get("doc_id")}))
    if not probes:
        log.warning("knowledge check skipped: no trained fact has a key span (number, date, name) to ask for")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:  # batched generation pads (left); the attention mask hides it
        tokenizer.pad_token = tokenizer.eos_token
    return KnowledgeCallback(probes, tokenizer, cfg, checkpoint_dir / "knowledge")
