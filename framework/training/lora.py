"""LoRA finetuning with transformers Trainer and peft: no hand-written training loop.

Examples are rendered with the model's chat template from the same prompts the
router serves with; the loss covers the answer tokens only. Examples are packed
padding-free (DataCollatorWithFlattening): each batch is one sequence whose position
ids restart per example, and the attention mask keeps examples apart, so no compute
goes to padding. bf16 autocast is used where the hardware runs it fast. Checkpoints,
resume, per-epoch eval loss, early stopping, progress and experiment trackers all come
from the Trainer, configured here.

Example:
    >>> metrics = train_lora(model_dir, train_rows, eval_rows, cfg.finetune, out_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Sequence

import torch

from framework.config import FinetuneConfig
from framework.training.fitting import tokenize_example

log = logging.getLogger(__name__)


def tokenize_rows(tokenizer, rows: Sequence[dict], max_length: int | str) -> tuple[list[dict], int]:
    """Rows tokenized as they are, longer ones skipped (`"auto"`: none); training itself trims RAFT context
    first (framework.training.fitting)."""
    out, skipped = [], 0
    for row in rows:
        item = tokenize_example(tokenizer, row["messages"], 10**9 if max_length == "auto" else max_length)
        if item is None:
            skipped += 1
        else:
            out.append(item)
    if skipped:
        log.warning("skipped %d examples longer than finetune.max_length=%s", skipped, max_length)
    return out, skipped


class AnswerOnlyPackedCollator:
    """Pack a batch padding-free and compute logits only where a loss is taken.

    The vocabulary projection of a small model is a large share of its compute, and
    most positions (system prompt, question, context chunks) carry no loss. Passing
    their indices as `logits_to_keep`, with `shift_labels` aligned to them, skips that
    work and the memory of full-vocabulary logits at every position.
    """

    def __init__(self) -> None:
        from transformers import DataCollatorWithFlattening

        self.flatten = DataCollatorWithFlattening()

    def __call__(self, features: list[dict]) -> dict:
        batch = self.flatten(features)
        labels = batch["labels"][0]
        shifted = torch.cat([labels[1:], torch.tensor([-100])])
        keep = torch.nonzero(shifted != -100).flatten()
        batch["logits_to_keep"] = keep
        batch["shift_labels"] = shifted[keep].unsqueeze(0)
        return batch


def frozen_dtype(cfg: FinetuneConfig, *, bf16: bool) -> torch.dtype:
    """dtype of the frozen base weights: fp32, or bf16 when asked for and training in bf16.

    Under autocast an fp32 base is cast to bf16 at every matmul; storing it in bf16 once
    skips those casts and halves the memory the weights take. On a 2-core avx512_bf16 CPU
    it was not clearly faster and moved the eval loss by more than autocast alone
    (docs/performance.md, Training), so it is opt-in. LoRA weights and their optimizer
    state stay fp32 either way.
    """
    if cfg.base_precision == "bf16" and not bf16:
        log.warning("finetune.base_precision=bf16 applies only when training in bf16 (precision is fp32 here); "
                    "keeping the base weights in fp32")
    return torch.bfloat16 if bf16 and cfg.base_precision == "bf16" else torch.float32


def _training_args(cfg: FinetuneConfig, output_dir: Path, *, bf16: bool, total_steps: int, has_eval: bool):
    from transformers import TrainingArguments

    from framework.training.callbacks import check_report_to

    early = cfg.early_stopping_patience > 0
    if early and not has_eval:
        raise ValueError("finetune.early_stopping_patience needs an eval split; set dataset.eval_fraction > 0 "
                         "and rerun `ragtune synth`, or set finetune.early_stopping_patience to 0")
    if early and cfg.save_steps and "save_steps" in cfg.model_fields_set:
        log.warning("finetune.save_steps is not used with early stopping: checkpoints are saved at each epoch's "
                    "evaluation, so the best one can be restored")
    save = "epoch" if early else ("steps" if cfg.save_steps else "no")
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=int(cfg.warmup_ratio * total_steps),
        lr_scheduler_type="cosine",
        logging_steps=max(1, total_steps // 20),
        eval_strategy="epoch" if has_eval else "no",
        save_strategy=save,
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.keep_checkpoints,
        save_only_model=False,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=check_report_to(list(cfg.report_to)),
        include_num_input_tokens_seen="all",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
    )


def train_lora(model_dir: Path, train_rows: Sequence[dict], eval_rows: Sequence[dict], cfg: FinetuneConfig,
               out_dir: Path, *, bf16: bool, checkpoint_dir: Path, resume_from: Path | None = None, show_progress: bool = True,
               callbacks: Sequence = (), init_adapter: Path | None = None) -> dict:
    """Train a LoRA adapter and save it (peft files only) into out_dir; returns metrics.

    Checkpoints go to `checkpoint_dir` every `cfg.save_steps` steps; `resume_from` (a
    checkpoint in it) continues an interrupted run. `init_adapter` (a peft folder) is the
    starting point instead of a fresh LoRA, its shape (rank, alpha, modules) included: a
    refresh continues the serving adapter rather than relearning every fact. Under torchrun
    / accelerate launch every process trains its share and only the main one writes out_dir.
    """
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        EarlyStoppingCallback,
        PrinterCallback,
        Trainer,
        set_seed,
    )

    from framework.training.callbacks import ProgressCallback, ThroughputCallback
    from framework.training.fitting import fit_rows, fit_training_rows
    from framework.training.selection import keep_weights, knowledge_callback, knowledge_summary

    start = time.perf_counter()
    set_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    train, fit = fit_training_rows(tokenizer, model_dir, train_rows, cfg)
    evals, _ = fit_rows(tokenizer, eval_rows, fit.max_length, window=fit.context_window)
    skipped = fit.dropped
    if not train:
        raise ValueError("no training example fits finetune.max_length; raise it or shorten the examples")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=frozen_dtype(cfg, bf16=bf16), local_files_only=True)
    model.config.use_cache = False
    if init_adapter is not None:
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=cfg.target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)  # LoRA weights stay fp32 even on a bf16 base
    steps_per_epoch = math.ceil(len(train) / (cfg.batch_size * cfg.gradient_accumulation))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    args = _training_args(cfg, checkpoint_dir, bf16=bf16, total_steps=total_steps, has_eval=bool(evals))
    throughput = ThroughputCallback()
    extra = [throughput, *callbacks]
    if show_progress:
        extra.append(ProgressCallback(throughput))
    if cfg.early_stopping_patience:
        extra.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    knowledge = knowledge_callback(train_rows, model_dir, cfg, checkpoint_dir, world_size=args.world_size)
    if knowledge is not None:
        extra.append(knowledge)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evals or None,
                      data_collator=AnswerOnlyPackedCollator(), callbacks=extra)
    trainer.remove_callback(PrinterCallback)  # it prints log dicts on stdout, where --json output goes
    load_seconds = time.perf_counter() - start
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - start - load_seconds
    state = trainer.state
    metrics = {
        "train_loss": round(float(result.training_loss), 4),
        "steps": state.global_step,
        "epochs": round(float(state.epoch or 0), 2),
        "train_examples": len(train),
        "eval_examples": len(evals),
        "skipped_too_long": skipped,
        "rows": fit.to_dict(),
        "tokens": int(state.num_input_tokens_seen),
        "tokens_per_second": round(throughput.tokens_per_second, 1),
        "load_seconds": round(load_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "resumed_from_step": int(resume_from.name.split("-")[1]) if resume_from else None,
        "world_size": args.world_size,
    }
    if evals:
        history = [h for h in state.log_history if "eval_loss" in h]
        metrics["eval_loss_per_epoch"] = [{"epoch": round(h["epoch"], 2), "eval_loss": round(h["eval_loss"], 4)}
                                          for h in history]
        # The last epoch's evaluation is the final one, unless early stopping restored an earlier epoch.
        last_is_final = history and history[-1]["step"] == state.global_step and not args.load_best_model_at_end
        final = history[-1] if last_is_final else trainer.evaluate()
        metrics["eval_loss"] = round(float(final["eval_loss"]), 4)
        if cfg.early_stopping_patience:
            metrics["stopped_early"] = state.global_step < state.max_steps
    kept = knowledge.finish(state.log_history) if knowledge is not None else None
    if knowledge is not None:
        metrics["knowledge"] = knowledge_summary(knowledge, kept, final_step=state.global_step)
        if kept is not None and kept.get("eval_loss") is not None:
            metrics["eval_loss"] = round(float(kept["eval_loss"]), 4)  # the kept epoch's, not the last one's
    if trainer.is_world_process_zero():
        out_dir.mkdir(parents=True, exist_ok=True)
        if kept is not None and kept["step"] != state.global_step:
            keep_weights(kept, out_dir)
        else:
            trainer.model.save_pretrained(str(out_dir))
    return metrics
