"""Decoding controls that look at the answer only, and never change a number, a code or a copied span.

transformers applies `repetition_penalty` and `no_repeat_ngram_size` to every token of
`input_ids`, and for a decoder-only model that includes the prompt: each word of the
retrieved context is penalised, so copying a name or a number out of it is discouraged at
every step (on a probe set the answer contained the target string 3 times in 100 with a
penalty of 1.1, 10 with none). Here both apply to generated tokens only: prompts are
left-padded, so every row's answer starts at the same column, the padded prompt length.

Token-level controls also reach inside words. Tokenizers that split digits (the bundled
SmolLM2 writes "121,000" as 1 2 1 , 0 0 0) make ",000" a 4-gram, so a plain
`no_repeat_ngram_size: 4` turned "98,000 to 121,000 euros" into "121,001". So a control may
only act on a token that starts a word of letters (" euros", " The"), never on a digit,
punctuation, whitespace, the continuation of a word, an all-capitals or one-letter start that may
begin a code (" DE" of an IBAN, " v" of a version), and never right after a digit (banning
" euros" after "121,000" would make the model go on with "0"). A span of the prompt
may be copied as often as the prompt holds it: an n-gram the prompt has twice may be
said twice, and a token that continues a span copied from the prompt is not penalised.
Loops (the same sentence again) are still stopped, at the next word that repeats one.

`SentenceBudget` stops a row once its answer holds `max_sentences` complete sentences
(framework.text.sentence_ends: "12.50", "e.g." and a list marker "1." do not count), so
answers end at a sentence end instead of at the token budget.

Example:
    >>> processors, stopping = decoding_controls(prompt_length=12, repetition_penalty=1.2, no_repeat_ngram_size=3,
    ...                                          max_sentences=None, tokenizer=None)
    >>> [type(p).__name__ for p in processors], len(stopping)
    (['AnswerRepetitionPenalty', 'GeneratedNoRepeatNGram'], 0)
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from framework.text import sentence_ends, strip_list_marker


@dataclass(frozen=True)
class TokenKinds:
    """Per vocabulary id: `word` (the token starts a word of letters: a control may act on it) and
    `digit_end` (its text ends in a digit: the token after it continues a number or code)."""

    word: torch.Tensor
    digit_end: torch.Tensor

    def may_act(self, previous: int | None, token: int) -> bool:
        """Whether a control may ban or penalise `token` after `previous` (None: the answer's first token)."""
        if token >= len(self.word) or not bool(self.word[token]):
            return False
        return previous is None or previous >= len(self.digit_end) or not bool(self.digit_end[previous])


_KINDS: "weakref.WeakKeyDictionary[object, TokenKinds]" = weakref.WeakKeyDictionary()


def token_kinds(tokenizer) -> TokenKinds | None:
    """The kinds of every token of `tokenizer` (cached per tokenizer; None without one: every token is a word).

    Each token is decoded after a letter, so the answer is the same for byte-level BPE (" euros"),
    SentencePiece ("▁euros") and word-level vocabularies (see `_is_word`)."""
    if tokenizer is None:
        return None
    try:
        return _KINDS[tokenizer]
    except (KeyError, TypeError):
        pass
    anchor = tokenizer.convert_tokens_to_ids("a")
    anchor = anchor if isinstance(anchor, int) and anchor != tokenizer.unk_token_id else \
        tokenizer("a", add_special_tokens=False)["input_ids"][0]
    head = tokenizer.decode([anchor])
    texts = [t[len(head):] if t.startswith(head) else t
             for t in tokenizer.batch_decode([[anchor, i] for i in range(len(tokenizer))])]
    word = [_is_word(t) for t in texts]
    kinds = TokenKinds(torch.tensor(word, dtype=torch.bool),
                       torch.tensor([t.rstrip()[-1:].isdigit() for t in texts], dtype=torch.bool))
    try:
        _KINDS[tokenizer] = kinds
    except TypeError:
        pass
    return kinds


def _is_word(text: str) -> bool:
    """A token a control may act on: whitespace, then two or more letters, not all capitals (" euros",
    " The"); " IBAN", " DE", " v" and " a" may start a code or an identifier, so they are spared too."""
    letters = text.strip()
    return text[:1].isspace() and len(letters) >= 2 and letters.isalpha() and not letters.isupper()


def _may_act(kinds: TokenKinds | None, previous: int | None, token: int) -> bool:
    return True if kinds is None else kinds.may_act(previous, token)


class _PromptGrams:
    """Counts of each row's prompt n-grams, taken on the first call (the prompt does not change)."""

    def __init__(self, n: int, prompt_length: int) -> None:
        self.n, self.prompt_length = n, prompt_length
        self.rows: list[Counter] | None = None

    def counts(self, input_ids: torch.LongTensor) -> list[Counter]:
        if self.rows is None:
            n = self.n
            self.rows = [Counter(tuple(p[i:i + n]) for i in range(len(p) - n + 1))
                         for p in input_ids[:, :self.prompt_length].tolist()]
        return self.rows


class GeneratedNoRepeatNGram(LogitsProcessor):
    """Bans a token that would repeat an n-gram of the answer so far, unless the prompt holds that n-gram more
    often than the answer has said it (copying stays free) or the token is one no control touches (`TokenKinds`:
    digits, punctuation, word continuations, anything right after a digit)."""

    def __init__(self, ngram_size: int, prompt_length: int, kinds: TokenKinds | None = None) -> None:
        if ngram_size < 1:
            raise ValueError(f"no_repeat_ngram_size must be at least 1, got {ngram_size}")
        self.n, self.prompt_length, self.kinds = ngram_size, prompt_length, kinds
        self.prompt = _PromptGrams(ngram_size, prompt_length)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n = self.n
        prompt_counts = self.prompt.counts(input_ids)
        for row, answer in enumerate(input_ids[:, self.prompt_length:].tolist()):
            if len(answer) < n - 1:
                continue
            prefix = tuple(answer[len(answer) - n + 1:])
            said = Counter(answer[i + n - 1] for i in range(len(answer) - n + 1) if tuple(answer[i:i + n - 1]) == prefix)
            previous = answer[-1] if answer else None
            for token, times in said.items():
                if _may_act(self.kinds, previous, token) and prompt_counts[row][prefix + (token,)] <= times:
                    scores[row, token] = -float("inf")
        return scores


class AnswerRepetitionPenalty(LogitsProcessor):
    """transformers' repetition penalty on the tokens the answer has used (not the prompt's), sparing the tokens
    no control touches and a token that continues a span copied from the prompt (the prompt holds the answer's
    last token followed by it)."""

    def __init__(self, penalty: float, prompt_length: int, kinds: TokenKinds | None = None) -> None:
        if penalty <= 0:
            raise ValueError(f"repetition_penalty must be positive, got {penalty}")
        self.penalty, self.prompt_length, self.kinds = float(penalty), prompt_length, kinds
        self.prompt = _PromptGrams(2, prompt_length)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        prompt_pairs = self.prompt.counts(input_ids)
        for row, answer in enumerate(input_ids[:, self.prompt_length:].tolist()):
            previous = answer[-1] if answer else None
            tokens = [t for t in set(answer) if t < scores.shape[1] and _may_act(self.kinds, previous, t)
                      and not (previous is not None and prompt_pairs[row][(previous, t)])]
            if tokens:
                index = torch.tensor(tokens, device=scores.device)
                picked = scores[row, index]
                scores[row, index] = torch.where(picked < 0, picked * self.penalty, picked / self.penalty)
        return scores


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
    kinds = token_kinds(tokenizer) if repetition_penalty != 1.0 or no_repeat_ngram_size else None
    if repetition_penalty != 1.0:
        processors.append(AnswerRepetitionPenalty(repetition_penalty, prompt_length, kinds))
    if no_repeat_ngram_size:
        processors.append(GeneratedNoRepeatNGram(no_repeat_ngram_size, prompt_length, kinds))
    stopping = StoppingCriteriaList([SentenceBudget(tokenizer, prompt_length, max_sentences)] if max_sentences else [])
    if budgets and len(set(budgets)) > 1:
        stopping.append(RowBudget(prompt_length, budgets))
    return processors, stopping


def cut_after_sentences(text: str, max_sentences: int | None) -> str:
    """The answer up to its `max_sentences`-th sentence end (the stop comes a token late)."""
    ends = sentence_ends(text)
    return text[:ends[max_sentences - 1]] if max_sentences and len(ends) >= max_sentences else text


def trim_unfinished(text: str) -> str:
    """An answer the token budget cut off, back to its last complete sentence; without one, only a trailing
    list marker ("... \\n2.") is dropped, so an answer never ends on a bare marker."""
    ends = sentence_ends(text)
    return text[:ends[-1]] if ends else strip_list_marker(text)


_SOURCE = r"(?:the |these |this |your )?(?:company |provided |given |above |retrieved )?(?:documents?|context|passages?|texts?|sources?|information)(?: (?:provided|given|above|below))?"
_PREAMBLES = [re.compile(p, re.IGNORECASE) for p in (
    rf"^(?:according to|based on|as (?:stated|mentioned|described|shown) in|from|in) {_SOURCE}\s*[,:]\s*",
    rf"^{_SOURCE} (?:clearly )?(?:states?|says?|mentions?|indicates?|shows?|explains?|notes?|specif(?:y|ies)|describes?"
    r"|suggests?|confirms?)(?: that\b\s*,?|\s*[,:])\s*",
    r"^(?:the )?answer(?: to (?:the|your|this) question)? is\s*:\s*",
    r"^(?:sure|certainly|of course|great question)\s*[,!.]\s*",
)]


def strip_preamble(text: str) -> str:
    """An answer without a leading clause that only says where it comes from ("The documents state that",
    "According to the context,", "The answer to the question is:"), so it starts with its content; the first
    word is capitalised when it is a plain lower-case word (never a code such as "v2.10").

    Example:
        >>> strip_preamble("The documents state that the expense limit for train travel is 200 EUR.")
        'The expense limit for train travel is 200 EUR.'
    """
    out = text
    for _ in range(3):  # "Based on the documents, the context says that ..."
        for pattern in _PREAMBLES:
            out = pattern.sub("", out, count=1)
    if out == text or len(out.split()) < 2:
        return text
    first = out.split(None, 1)[0]
    return out[0].upper() + out[1:] if first.isalpha() and first.islower() and len(first) > 1 else out
