"""The generator: one base causal LM in memory, LoRA adapters switched per request.

peft keeps every loaded adapter beside the base weights; a request names an adapter
(or none) and the model runs with exactly that one active, so `rag` and `combined`
answers come from the same weights in memory, with and without the adapter.

Example:
    >>> gen = HFGenerator(Path(".ragtune/models/SmolLM2-135M-Instruct"))  # doctest: +SKIP
    >>> gen.generate([closed_book("Hi")], adapter=None)                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import torch

from framework.config import GeneratorConfig, Precision
from framework.runtime.device import default_device
from framework.runtime.loading import load_causal_lm
from framework.runtime.precision import resolve_dtype
from framework.runtime.quantization import weights_label
from framework.serving.decoding import StopSequences, cut_after_sentences, decoding_controls, strip_preamble
from framework.serving.decoding import token_kinds, trim_unfinished
from framework.text import sentence_ends, strip_list_marker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    """One generated answer: its text, how many tokens were generated, and whether it was cut off
    by the token budget (`max_new_tokens`) instead of ending on its own; `prompt_tokens`: how many
    tokens of prompt the model read for it (what an API's `usage` reports)."""

    text: str
    tokens: int = 0
    truncated: bool = False
    prompt_tokens: int = 0


class Generator(Protocol):
    """What the router needs from a generation backend: render a prompt, generate with an adapter
    on or off, and load adapters by key."""

    def render(self, conversation: list[dict]) -> str: ...

    def complete(self, conversations: Sequence[list[dict]], *, adapter: str | None = None,
                 max_new_tokens: int | Sequence[int] = 64,
                 stop: Sequence[Sequence[str]] | None = None) -> list[Generation]: ...

    def has_adapter(self, key: str) -> bool: ...

    def load_adapter(self, key: str, path: Path) -> None: ...


class HFGenerator:
    """A local Hugging Face causal LM; greedy decoding with the controls of framework.serving.decoding.

    `repetition_penalty` and `no_repeat_ngram_size` apply to the answer's own words only, never to
    a number, a code or a span copied from the prompt;
    `max_sentences` ends an answer after that many sentences; an answer the token budget cut
    off is trimmed back to its last complete sentence (and reported as truncated); no answer ends
    on a bare list marker, and none starts with a clause that only says where it comes from.

    Padding-independent answers (`pad_multiple`): in bf16 a prompt's numerics depend on how far
    it is left-padded. So every prompt is padded to its length rounded up to `pad_multiple`
    tokens, alone or batched, and only prompts of the same padded length share a batch. In bf16
    the batch's shape still changes the kernels' rounding, so only fp32 makes a batched answer
    always equal the one-by-one answer (measured: docs/guides/serving.md, "Equal answers").
    """

    def __init__(self, model_dir: Path, *, dtype: torch.dtype = torch.float32, batch_size: int = 8,
                 repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
                 max_sentences: int | None = None, pad_multiple: int = 0, device: str = "cpu",
                 quantization: str = "none") -> None:
        from transformers import AutoTokenizer

        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = load_causal_lm(model_dir, dtype=dtype, device=device, quantization=quantization,
                                    key="generator.quantization")
        self.model.eval()
        self.device = device
        self.precision = weights_label(quantization, dtype)
        self.batch_size = batch_size
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.max_sentences = max_sentences
        self.pad_multiple = pad_multiple
        self._adapters: set[str] = set()
        if repetition_penalty != 1.0 or no_repeat_ngram_size:
            token_kinds(self.tokenizer)  # a pass over the vocabulary (seconds): at load, not in the first answer

    @classmethod
    def from_config(cls, model_dir: Path, cfg: GeneratorConfig, *, precision: Precision = "auto",
                    device: str | None = None) -> "HFGenerator":
        """The model in `model_dir` on `device` (None: the process's, framework.runtime.device), decoded as the
        `generator` section says."""
        device = device or default_device()
        return cls(model_dir, dtype=resolve_dtype(precision, device), batch_size=cfg.batch_size,
                   repetition_penalty=cfg.repetition_penalty, no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                   max_sentences=cfg.max_sentences, pad_multiple=cfg.pad_multiple, device=device,
                   quantization=cfg.quantization)

    def serving_info(self) -> dict:
        """Where and how this generator runs, for answer metadata and `ragtune serve`'s startup line."""
        return {"device": self.device, "precision": self.precision,
                "attention": getattr(self.model.config, "_attn_implementation", None) or "eager"}

    def has_adapter(self, key: str) -> bool:
        return key in self._adapters

    def load_adapter(self, key: str, path: Path) -> None:
        """Load a peft adapter under `key` (kept in memory beside the others)."""
        if key in self._adapters:
            return
        from peft import PeftModel

        if not self._adapters:
            self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=key, is_trainable=False)
        else:
            self.model.load_adapter(str(path), adapter_name=key, is_trainable=False)
        self.model.eval()
        self._adapters.add(key)

    def render(self, conversation: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def _adapter_context(self, adapter: str | None):
        if adapter is None:
            return self.model.disable_adapter() if self._adapters else contextlib.nullcontext()
        if adapter not in self._adapters:
            raise KeyError(f"adapter {adapter!r} is not loaded")
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    def generate(self, conversations: Sequence[list[dict]], *, adapter: str | None = None,
                 max_new_tokens: int = 64) -> list[str]:
        """The texts only (what a synthetic-data teacher needs)."""
        return [g.text for g in self.complete(conversations, adapter=adapter, max_new_tokens=max_new_tokens)]

    @torch.inference_mode()
    def complete(self, conversations: Sequence[list[dict]], *, adapter: str | None = None,
                 max_new_tokens: int | Sequence[int] = 64,
                 stop: Sequence[Sequence[str]] | None = None) -> list[Generation]:
        """Greedy answers in batches of `batch_size`, all with the same adapter (or none); `max_new_tokens`
        is one budget for all, or one per conversation (a row stops at its own: answers equal one-by-one ones);
        `stop`: per conversation, strings that end its generation once generated (the caller cuts the text)."""
        prompts = [self.render(c) for c in conversations]
        budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        stops = [tuple(s) for s in stop] if stop else [()] * len(prompts)
        out: list[Generation | None] = [None] * len(prompts)
        with self._adapter_context(adapter):
            for rows in self._batches(prompts):
                answers = self._generate_batch([prompts[i] for i in rows], [budgets[i] for i in rows],
                                               [stops[i] for i in rows])
                for i, generation in zip(rows, answers):
                    out[i] = generation
        return out

    def _batches(self, prompts: list[str]) -> list[list[int]]:
        """Indices of the prompts answered together, at most `batch_size` each; with `pad_multiple`, only
        prompts of the same padded length (see the class docstring)."""
        groups: dict[int, list[int]] = {}
        if self.pad_multiple:
            lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
            for i, n in enumerate(lengths):
                groups.setdefault(-(-n // self.pad_multiple), []).append(i)
        else:
            groups[0] = list(range(len(prompts)))
        return [rows[s:s + self.batch_size] for rows in groups.values() for s in range(0, len(rows), self.batch_size)]

    def _generate_batch(self, prompts: list[str], budgets: list[int],
                        stops: list[tuple[str, ...]] | None = None) -> list[Generation]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False,
                             pad_to_multiple_of=self.pad_multiple or None)
        enc = enc.to(self.model.device)
        length = enc["input_ids"].shape[1]
        processors, stopping = decoding_controls(prompt_length=length, repetition_penalty=self.repetition_penalty,
                                                 no_repeat_ngram_size=self.no_repeat_ngram_size,
                                                 max_sentences=self.max_sentences, tokenizer=self.tokenizer,
                                                 budgets=budgets)
        if stops and any(stops):
            stopping.append(StopSequences(self.tokenizer, length, stops))
        ids = self.model.generate(**enc, max_new_tokens=max(budgets), do_sample=False, logits_processor=processors,
                                  stopping_criteria=stopping, pad_token_id=self.tokenizer.pad_token_id)
        read = enc["attention_mask"].sum(dim=1).tolist()  # each row's prompt without its left padding
        return [dataclasses.replace(self._finished(row[:budget], budget), prompt_tokens=int(n))
                for row, budget, n in zip(ids[:, length:], budgets, read)]

    def _finished(self, row: torch.Tensor, max_new_tokens: int) -> Generation:
        """A row after the prompt: generation ends at the first end-of-sequence (or padding, which
        follows a finished row); a row with none ran out of budget."""
        eos = self.model.generation_config.eos_token_id
        ends = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.pad_token_id}
        stop = next((i for i, token in enumerate(row.tolist()) if token in ends), None)
        n = len(row) if stop is None else stop
        truncated = stop is None and len(row) >= max_new_tokens
        text = strip_preamble(self.tokenizer.decode(row[:n], skip_special_tokens=True).strip())
        text = cut_after_sentences(text, self.max_sentences)
        if truncated and len(sentence_ends(text)) < (self.max_sentences or 10**9):
            text = trim_unfinished(text)
        return Generation(text=strip_list_marker(text), tokens=n, truncated=truncated)
