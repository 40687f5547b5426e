"""Training rows fitted to the model's length: trimmed, never dropped in silence.

`finetune.max_length: auto` is the longest row, up to the base model's context window,
so by default every row trains whole. A row still too long is a `combined` (RAFT) row
whose retrieved context outgrew the window: its distractor chunks are removed one by
one (the longest first) and the rest renumbered, the oracle chunk always kept, before
the row is given up. What happened is counted per mode (`FitReport`), shown by
`finetune --dry-run` and stored in the adapter's manifest; a run that would drop more
than `finetune.max_dropped_fraction` of a mode's rows stops before training and says
which setting to change.

Example:
    >>> report = FitReport(max_length=512, context_window=8192,
    ...                    by_mode={"combined": {"rows": 200, "trimmed": 30, "dropped": 3}})
    >>> report.dropped, report.problem(0.01) is not None
    (3, True)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from framework import prompts
from framework.config import FinetuneConfig
from framework.dataset.formatting import text_hash

log = logging.getLogger(__name__)

_ITEM = re.compile(r"^\[(\d+)\] ", re.MULTILINE)


class TooManyDroppedError(ValueError):
    """More of a mode's rows would be dropped than `finetune.max_dropped_fraction` allows."""


@dataclass(frozen=True)
class FitReport:
    """Rows per mode: how many, how many had context chunks removed to fit, how many were dropped."""

    max_length: int
    context_window: int
    by_mode: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(m["dropped"] for m in self.by_mode.values())

    @property
    def trimmed(self) -> int:
        return sum(m["trimmed"] for m in self.by_mode.values())

    def problem(self, max_fraction: float) -> str | None:
        """Why training must not start (a mode loses more than `max_fraction` of its rows), or None."""
        over = {mode: m for mode, m in self.by_mode.items() if m["rows"] and m["dropped"] / m["rows"] > max_fraction}
        if not over:
            return None
        lost = ", ".join(f"{m['dropped']} of {m['rows']} {mode} rows" for mode, m in over.items())
        room = (f"raise finetune.max_length (now {self.max_length}; up to the base model's context window "
                f"{self.context_window}, or `auto`)" if self.max_length < self.context_window else
                "use a base model with a longer context window")
        return (f"{lost} do not fit in {self.max_length} tokens even with their retrieved context trimmed to the "
                f"oracle chunk; {room}, or lower dataset.raft.context_chunks or index.chunk_size and run "
                f"`ragtune synth` again, or allow it with finetune.max_dropped_fraction (now {max_fraction:g})")

    def describe(self) -> str:
        parts = [f"{mode} {m['rows']} ({m['trimmed']} trimmed, {m['dropped']} dropped)"
                 for mode, m in sorted(self.by_mode.items())]
        return f"rows per mode at max_length {self.max_length}: " + "; ".join(parts)

    def to_dict(self) -> dict:
        return {"max_length": self.max_length, "context_window": self.context_window, "trimmed": self.trimmed,
                "dropped": self.dropped, "by_mode": {k: dict(v) for k, v in self.by_mode.items()}}


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


def context_window(model_dir: Path, tokenizer=None) -> int:
    """The base model's context window (positions it was trained for)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None) or getattr(getattr(config, "text_config", None), name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else 2048


def split_context(content: str) -> tuple[str, list[tuple[str, str]], str] | None:
    """A `prompts.with_context` message as (instruction, [(title, text)], question part); None when the
    message is not one (it does not render back to itself)."""
    head, sep, rest = content.partition("\n\n")
    if not sep or head != prompts.CONTEXT_INSTRUCTION:
        return None
    body, sep, question = rest.rpartition("\n\n")
    if not sep:
        return None
    starts = [m for m in _ITEM.finditer(body)]
    starts = [m for i, m in enumerate(starts) if m.group(1) == str(i + 1)] if starts else []
    items = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() - 1 if i + 1 < len(starts) else len(body)
        items.append(body[m.end():end])
    rendered = "\n".join(f"[{i + 1}] {item}" for i, item in enumerate(items))
    if not items or rendered != body:
        return None
    return head, [tuple(item.split(": ", 1)) if ": " in item else ("", item) for item in items], question


def _render(head: str, items: Sequence[tuple[str, str]], question: str) -> str:
    context = "\n".join(prompts.CONTEXT_ITEM.format(n=i + 1, title=t, text=x) for i, (t, x) in enumerate(items))
    return f"{head}\n\n{context}\n\n{question}"


def _is_oracle(item: tuple[str, str], oracle_hash: str | None) -> bool:
    """The oracle chunk: its text hashes to the row's chunk_hash (a title holding ': ' is tried both ways)."""
    if not oracle_hash:
        return False
    title, text = item
    full = f"{title}: {text}" if title else text
    candidates = [full[i + 2:] for i in range(len(full)) if full.startswith(": ", i)] + [full]
    return any(text_hash(c) == oracle_hash for c in candidates)


def trimmed_versions(row: dict):
    """The row's messages with fewer and fewer context chunks: each step removes the longest distractor
    (the oracle chunk stays); nothing for a row without retrieved context."""
    user = row["messages"][-2] if len(row["messages"]) >= 2 else None
    parsed = split_context(user["content"]) if user and user.get("role") == "user" else None
    if parsed is None:
        return
    head, items, question = parsed
    items = list(items)
    while True:
        distractors = [i for i, item in enumerate(items) if not _is_oracle(item, row.get("chunk_hash"))]
        if not distractors or len(items) <= 1:
            return
        items.pop(max(distractors, key=lambda i: len(items[i][1])))
        messages = [*row["messages"][:-2], {**user, "content": _render(head, items, question)}, row["messages"][-1]]
        yield messages


def fit_rows(tokenizer, rows: Sequence[dict], max_length: int, *,
             window: int | None = None) -> tuple[list[dict], FitReport]:
    """Tokenized rows that fit `max_length`, RAFT context trimmed where needed, and what it took per mode."""
    out, counts = [], {}
    for row in rows:
        mode = row.get("mode") or "finetuned"
        c = counts.setdefault(mode, {"rows": 0, "trimmed": 0, "dropped": 0})
        c["rows"] += 1
        item = tokenize_example(tokenizer, row["messages"], max_length)
        if item is None:
            item = next((i for m in trimmed_versions(row) if (i := tokenize_example(tokenizer, m, max_length))), None)
            c["trimmed" if item is not None else "dropped"] += 1
        if item is not None:
            out.append(item)
    report = FitReport(max_length=max_length, context_window=window or max_length, by_mode=counts)
    if report.dropped:
        log.warning("dropped %d training rows longer than finetune.max_length=%d (%s)", report.dropped, max_length,
                    report.describe())
    return out, report


def resolve_max_length(tokenizer, rows: Sequence[dict], cfg: FinetuneConfig, window: int) -> int:
    """`finetune.max_length`, with `auto` the longest row in tokens, capped at the context window."""
    if cfg.max_length != "auto":
        if cfg.max_length > window:
            log.warning("finetune.max_length=%d is over the base model's context window (%d); using %d",
                        cfg.max_length, window, window)
        return min(cfg.max_length, window)
    longest = max((len(i["input_ids"]) for r in rows if (i := tokenize_example(tokenizer, r["messages"], 10**9))),
                  default=16)
    return max(16, min(longest, window))


def fit_training_rows(tokenizer, model_dir: Path, rows: Sequence[dict], cfg: FinetuneConfig, *,
                      check: bool = True) -> tuple[list[dict], FitReport]:
    """`fit_rows` at the resolved max_length; with `check`, too many dropped rows raise TooManyDroppedError."""
    window = context_window(model_dir, tokenizer)
    items, report = fit_rows(tokenizer, rows, resolve_max_length(tokenizer, rows, cfg, window), window=window)
    problem = report.problem(cfg.max_dropped_fraction) if check else None
    if problem:
        raise TooManyDroppedError(f"training would not start: {problem}")
    return items, report
