"""Decoding controls that look at the answer only, never at the prompt.

transformers applies `repetition_penalty` and `no_repeat_ngram_size` to every token of
`input_ids`, and for a decoder-only model that includes the prompt: each word of the
retrieved context is penalised, so copying a name or a number out of it is discouraged at
every step (on a probe set the answer contained the target string 3 times in 100 with a
penalty of 1.1, 10 with none). Here both apply to generated tokens only: prompts are
left-padded, so every row's answer starts at the same column, the padded prompt length.

`SentenceBudget` stops a row once its answer holds `max_sentences` complete sentences
(a sentence end followed by whitespace, so "12.50" or "e.g." do not count), so answers end
at a sentence end instead of at the token budget.

Example:
    >>> processors, stopping = decoding_controls(prompt_length=12, repetition_penalty=1.2, no_repeat_ngram_size=3,
    ...                                          max_sentences=None, tokenizer=None)
    >>> [type(p).__name__ for p in processors], len(stopping)
    (['RepetitionPenaltyLogitsProcessor', 'GeneratedNoRepeatNGram'], 0)
"""

from __future__ import annotations

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)

from framework.text import sentence_ends


class GeneratedNoRepeatNGram(LogitsProcessor):
    """Bans a token that would repeat an n-gram of the answer so far; n-grams of the prompt are free."""

    def __init__(self, ngram_size: int, prompt_length: int) -> None:
        self.inner = NoRepeatNGramLogitsProcessor(ngram_size)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.inner(input_ids[:, self.prompt_length:], scores)


class SentenceBudget(StoppingCriteria):
    """Stops each row when its answer holds `max_sentences` complete sentences."""

    def __init__(self, tokenizer, prompt_length: int, max_sentences: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.max_sentences = max_sentences

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length:], skip_special_tokens=True)
        done = [len([e for e in sentence_ends(t.strip()) if e < len(t.strip())]) >= self.max_sentences for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class StopSequences(StoppingCriteria):
    """Stops each row once its answer contains one of that row's stop sequences (OpenAI's `stop`), so no
    tokens are spent past it; the server cuts the text before the sequence (serving/wire.py)."""

    def __init__(self, tokenizer, prompt_length: int, stops: list[tuple[str, ...]]) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stops = stops

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length:], skip_special_tokens=True)
        done = [any(s in text for s in stops) for text, stops in zip(texts, self.stops)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class RowBudget(StoppingCriteria):
    """Stops each row at its own token budget, so requests with different budgets share one batch."""

    def __init__(self, prompt_length: int, budgets: list[int]) -> None:
        self.prompt_length = prompt_length
        self.budgets = torch.tensor(budgets)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.prompt_length) >= self.budgets.to(input_ids.device)


def decoding_controls(*, prompt_length: int, repetition_penalty: float, no_repeat_ngram_size: int,
                      max_sentences: int | None, tokenizer,
                      budgets: list[int] | None = None) -> tuple[LogitsProcessorList, StoppingCriteriaList]:
    """The processors and stopping criteria for one left-padded batch whose prompts are `prompt_length` long
    (`budgets`: each row's token budget when they differ)."""
    processors = LogitsProcessorList()
    if repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(float(repetition_penalty), prompt_ignore_length=prompt_length))
    if no_repeat_ngram_size:
        processors.append(GeneratedNoRepeatNGram(no_repeat_ngram_size, prompt_length))
    stopping = StoppingCriteriaList([SentenceBudget(tokenizer, prompt_length, max_sentences)] if max_sentences else [])
    if budgets and len(set(budgets)) > 1:
        stopping.append(RowBudget(prompt_length, budgets))
    return processors, stopping


def cut_after_sentences(text: str, max_sentences: int | None) -> str:
    """The answer up to its `max_sentences`-th sentence end (the stop comes a token late)."""
    ends = sentence_ends(text)
    return text[:ends[max_sentences - 1]] if max_sentences and len(ends) >= max_sentences else text


def trim_unfinished(text: str) -> str:
    """An answer the token budget cut off, back to its last complete sentence (unchanged if it has none)."""
    ends = sentence_ends(text)
    return text[:ends[-1]] if ends else text
