"""LoRA finetuning with transformers Trainer and peft: no hand-written training loop.

Examples are rendered with the model's chat template from the same prompts the
router serves with; the loss covers the answer tokens only. Examples are packed
padding-free (DataCollatorWithFlattening): each batch is one sequence whose position
ids restart per example, and the attention mask keeps examples apart, so no compute
goes to padding. bf16 autocast is used where the hardware runs it fast.

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

log = logging.getLogger(__name__)


def tokenize_example(tokenizer, messages: list[dict], max_length: int) -> dict | None:
    """input_ids and labels with the prompt masked (-100); None when it does not fit max_length."""
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently inside the full conversation; "
                         "ragtune cannot mask the prompt for this model")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):].rstrip("\n"), add_special_tokens=False)["input_ids"]
    ids = prompt_ids + answer_ids
    if len(ids) > max_length:
        return None
    return {"input_ids": ids, "labels": [-100] * len(prompt_ids) + answer_ids}


def tokenize_rows(tokenizer, rows: Sequence[dict], max_length: int) -> tuple[list[dict], int]:
    out, skipped = [], 0
    for row in rows:
        item = tokenize_example(tokenizer, row["messages"], max_length)
        if item is None:
            skipped += 1
        else:
            out.append(item)
    if skipped:
        log.warning("skipped %d examples longer than finetune.max_length=%d", skipped, max_length)
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


def train_lora(model_dir: Path, train_rows: Sequence[dict], eval_rows: Sequence[dict], cfg, out_dir: Path, *,
               bf16: bool, show_progress: bool = True) -> dict:
    """Train a LoRA adapter and save it (peft files only) into out_dir; returns metrics."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed

    set_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    train, skipped = tokenize_rows(tokenizer, train_rows, cfg.max_length)
    evals, _ = tokenize_rows(tokenizer, eval_rows, cfg.max_length)
    if not train:
        raise ValueError("no training example fits finetune.max_length; raise it or shorten the examples")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, local_files_only=True)
    model.config.use_cache = False
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=cfg.target_modules, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    steps_per_epoch = math.ceil(len(train) / (cfg.batch_size * cfg.gradient_accumulation))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    args = TrainingArguments(
        output_dir=str(out_dir / "_trainer"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=int(cfg.warmup_ratio * total_steps),
        lr_scheduler_type="cosine",
        logging_steps=max(1, total_steps // 20),
        eval_strategy="epoch" if evals else "no",
        save_strategy="no",
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.seed,
        report_to="none",
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evals or None,
                      data_collator=AnswerOnlyPackedCollator())
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    tokens = sum(len(x["input_ids"]) for x in train) * (total_steps / max(1, steps_per_epoch))
    metrics = {
        "train_loss": round(float(result.training_loss), 4),
        "train_seconds": round(seconds, 1),
        "tokens_per_second": round(tokens / seconds, 1),
        "steps": total_steps,
        "train_examples": len(train),
        "skipped_too_long": skipped,
    }
    if evals:
        metrics["eval_loss"] = round(float(trainer.evaluate()["eval_loss"]), 4)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    import shutil

    shutil.rmtree(out_dir / "_trainer", ignore_errors=True)
    return metrics
