"""Per-answer scores: pure functions of texts, each defined exactly (docs/guides/evaluation.md).

Words are lowercased runs of letters and digits (decimals kept: "0.30" is one word);
content words are words outside `STOPWORDS`.

- `token_f1`: SQuAD-style F1 of the answer's and the reference's words (with repeats).
- `answer_recall`: share of the reference's distinct content words found in the answer.
- `answer_recall_new_words`: the same, over only the reference's content words that are
  not in the question. Token F1 and recall reward echoing the question (a bare model that
  repeats it ties RAG); this counts only the words the answer had to know.
- `groundedness`: share of the answer's distinct content words, Snowball-stemmed, that
  occur (stemmed) in the retrieved chunks' text: how much of what the answer says the
  context could have supplied. It measures support by words, not truth: a copied wrong
  sentence is grounded, a correct paraphrase with new words is not.
- `repetition_rate`: share of the answer's word 4-grams that repeat an earlier 4-gram
  (the untuned model's "same line again" failure).
- `semantic_similarity`: cosine of answer and reference embeddings (the project's embedder).

Undefined cases return None (no content words to count), and means skip them.

Example:
    >>> round(token_f1("28 days of leave", "Employees get 28 days of leave."), 2)
    0.8
    >>> repetition_rate("a b c d a b c d")
    0.2
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Sequence

import numpy as np

STOPWORDS = frozenset(
    "a an the of to in on at for and or is are was were be been being by with from as that this these those "
    "it its do does did i me my we us our you your he she his her they them their there here can what how which "
    "when who whom whose why where has have had will would shall so if then than into about also but s t".split())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[.,:][0-9]+)*", text.lower())


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOPWORDS}


@functools.lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def stems(tokens) -> set[str]:
    return set(_stemmer().stemWords(list(tokens)))


def token_f1(answer: str, reference: str) -> float:
    a, r = words(answer), words(reference)
    common = sum((Counter(a) & Counter(r)).values())
    if not a or not r or common == 0:
        return 0.0
    p, rec = common / len(a), common / len(r)
    return 2 * p * rec / (p + rec)


def answer_recall(answer: str, reference: str) -> float:
    ref = content_words(reference)
    return len(ref & set(words(answer))) / len(ref) if ref else 0.0


def answer_recall_new_words(answer: str, reference: str, question: str) -> float | None:
    """Recall of the reference's content words that the question does not already contain;
    None when the reference adds no word to the question.

    Example:
        >>> answer_recall_new_words("Employees get 28 days", "Employees get 28 days.", "How many days?")
        1.0
    """
    new = content_words(reference) - set(words(question))
    return len(new & set(words(answer))) / len(new) if new else None


def groundedness(answer_text: str, context_texts: Sequence[str]) -> float | None:
    """Share of the answer's distinct content words (stemmed) found in the context (stemmed);
    None for an answer without content words.

    Example:
        >>> groundedness("Employees receive 30 days", ["Every employee receives 28 days of leave."])
        0.75
    """
    said = stems(content_words(answer_text))
    if not said:
        return None
    supplied = stems(w for text in context_texts for w in words(text))
    return len(said & supplied) / len(said)


def repetition_rate(text: str, n: int = 4) -> float:
    """Share of word n-grams that repeat an earlier one; 0.0 for answers shorter than n words."""
    tokens = words(text)
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def semantic_similarity(answers: Sequence[str], references: Sequence[str], *, embedder) -> list[float]:
    """Cosine similarity of each answer with its reference, embedded by `embedder` (batched);
    an empty answer scores 0."""
    if not answers:
        return []
    vectors = np.asarray(embedder.embed(list(answers) + list(references)), dtype=float)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    a, r = vectors[:len(answers)], vectors[len(answers):]
    return [float(x) if text.strip() else 0.0 for x, text in zip((a * r).sum(axis=1), answers)]
