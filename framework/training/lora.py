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
import os
import time
from pathlib import Path
from typing import Sequence

import torch

from framework.config import FinetuneConfig
from framework.training.fitting import tokenize_example
from framework.runtime.device import default_device
from framework.runtime.loading import load_causal_lm

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


class AnswerOnlyPaddedCollator:
    """Pad a batch to its longest example (`finetune.packing: false`), logits only where a loss is taken.

    The baseline packing is measured against, and the layout for attention kernels that
    cannot keep packed examples apart. Logits are kept at every position where some row
    takes a loss, so the two collators differ only in padding.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"])
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(f["labels"])
        shifted = torch.cat([labels[:, 1:], torch.full((len(features), 1), -100)], dim=1)
        keep = torch.nonzero((shifted != -100).any(dim=0)).flatten()
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "logits_to_keep": keep,
                "shift_labels": shifted[:, keep]}


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


def _training_args(cfg: FinetuneConfig, output_dir: Path, *, bf16: bool, total_steps: int, has_eval: bool,
                   device: str = "cpu", checkpointing: bool = False):
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
        use_cpu=device == "cpu",
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=check_report_to(list(cfg.report_to)),
        include_num_input_tokens_seen="all",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
    )


def make_collator(cfg: FinetuneConfig, tokenizer):
    """Packed (`finetune.packing: true`, the default) or padded batches, both with answer-only logits."""
    if cfg.packing:
        return AnswerOnlyPackedCollator()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return AnswerOnlyPaddedCollator(pad)


def use_device(device: str) -> None:
    """Make `cuda:N` the current GPU of a single process, so the Trainer (which uses the current one) trains there.
    Under a launcher each process already has its GPU (LOCAL_RANK)."""
    if device.startswith("cuda") and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        torch.cuda.set_device(int(device.split(":")[1]))


def load_base_for_training(model_dir: Path, cfg: FinetuneConfig, *, bf16: bool, device: str):
    """The frozen base on `device`: fp32 or bf16 (frozen_dtype), or 8-bit / 4-bit NF4 (QLoRA) with bf16 compute
    where training runs in bf16; a quantized base is made ready for k-bit training (norms in fp32, input grads)."""
    if cfg.quantization == "none":
        model = load_causal_lm(model_dir, dtype=frozen_dtype(cfg, bf16=bf16), device=device)
    else:
        from peft import prepare_model_for_kbit_training

        model = load_causal_lm(model_dir, dtype=torch.bfloat16 if bf16 else torch.float32, device=device,
                               quantization=cfg.quantization)
        # the gradient checkpointing decision is the Trainer's (use_checkpointing), not peft's
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model.config.use_cache = False
    return model


def use_checkpointing(cfg: FinetuneConfig, model_dir: Path, items: Sequence[dict], *, bf16: bool, device: str) -> bool:
    """`finetune.gradient_checkpointing`: true/false as set; auto turns it on only when the memory estimate of
    the run without it does not fit the device (framework.training.memory)."""
    if cfg.gradient_checkpointing != "auto":
        return bool(cfg.gradient_checkpointing)
    from framework.training.memory import estimate_memory

    est = estimate_memory(model_dir, cfg, bf16=bf16, device=device, items=items)
    if est.checkpointing:
        log.info("gradient checkpointing on: the run needs about %.1f GB without it, %.1f GB with it, and %s has "
                 "%.1f GB", est._total(False) / 2**30, est.total_with_checkpointing_gb, device, est.device_gb)
    return est.checkpointing


def train_lora(model_dir: Path, train_rows: Sequence[dict], eval_rows: Sequence[dict], cfg: FinetuneConfig,
               out_dir: Path, *, bf16: bool, checkpoint_dir: Path, resume_from: Path | None = None, show_progress: bool = True,
               callbacks: Sequence = (), init_adapter: Path | None = None, device: str | None = None) -> dict:
    """Train a LoRA adapter and save it (peft files only) into out_dir; returns metrics.

    Checkpoints go to `checkpoint_dir` every `cfg.save_steps` steps; `resume_from` (a
    checkpoint in it) continues an interrupted run. `init_adapter` (a peft folder) is the
    starting point instead of a fresh LoRA, its shape (rank, alpha, modules) included: a
    refresh continues the serving adapter rather than relearning every fact. Under torchrun
    / accelerate launch every process trains its share and only the main one writes out_dir.
    `device` is a resolved `runtime.device` (framework.runtime.device; None: auto).
    """
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import (
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
    device = device or default_device()
    use_device(device)
    model = load_base_for_training(model_dir, cfg, bf16=bf16, device=device)
    checkpointing = use_checkpointing(cfg, model_dir, train, bf16=bf16, device=device)
    if init_adapter is not None:
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=cfg.target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)  # LoRA weights stay fp32 even on a bf16 or quantized base
    if checkpointing:
        model.enable_input_require_grads()  # a frozen embedding would cut the graph at the first checkpoint
    steps_per_epoch = math.ceil(len(train) / (cfg.batch_size * cfg.gradient_accumulation))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    args = _training_args(cfg, checkpoint_dir, bf16=bf16, total_steps=total_steps, has_eval=bool(evals),
                          device=device, checkpointing=checkpointing)
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
                      data_collator=make_collator(cfg, tokenizer), callbacks=extra)
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
        "device": device,
        "gradient_checkpointing": checkpointing,
        "quantization": cfg.quantization,
        "packing": cfg.packing,
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
    metrics["distributed"] = str(trainer.accelerator.distributed_type.value).lower()
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not trainer.is_fsdp_enabled:
        log.warning("FSDP shards only across GPUs (accelerate); this run was data-parallel (%s): every process "
                    "held the whole base", metrics["distributed"])
    if kept is not None and kept["step"] != state.global_step:
        if trainer.is_world_process_zero():
            out_dir.mkdir(parents=True, exist_ok=True)
            keep_weights(kept, out_dir)
    else:
        save_adapter(trainer, out_dir)
    model = None  # noqa: F841  (this frame's reference: the model is freed with the trainer's)
    release(trainer)
    return metrics


def release(trainer) -> None:
    """Free the trained model, its optimizer and the Trainer before the caller goes on (the demo evaluates next in
    the same process), and hand the freed memory back to the operating system (framework.runtime.device)."""
    import gc

    from framework.runtime.device import return_freed_memory

    trainer.accelerator.free_memory()
    trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
    gc.collect()
    return_freed_memory()


def save_adapter(trainer, out_dir: Path) -> None:
    """Write the LoRA weights (peft files only) into out_dir from the main process. Under FSDP the weights
    are sharded: every process takes part in gathering them (Trainer.save_model), the main one writes."""
    if trainer.is_fsdp_enabled:
        trainer.save_model(str(out_dir))
        if trainer.is_world_process_zero():
            (out_dir / "training_args.bin").unlink(missing_ok=True)  # the Trainer's, not part of an adapter
        return
    if trainer.is_world_process_zero():
        out_dir.mkdir(parents=True, exist_ok=True)
        trainer.model.save_pretrained(str(out_dir))
