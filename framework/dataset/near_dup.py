"""Near-duplicate questions by word-set Jaccard similarity, without comparing every pair.

Comparing each new question with every kept one is quadratic: tens of thousands of
synthetic questions take minutes. Prefix filtering (Chaudhuri et al. 2006; Bayardo et
al. 2007) is exact and fast: with words ordered rarest first, two sets whose Jaccard
similarity reaches t must share a word among the first |x| - ceil(t|x|) + 1 words of
each, so only questions sharing such a rare word are compared.

Example:
    >>> index = JaccardIndex(["what is the meal limit", "what is the daily meal limit"], threshold=0.8)
    >>> index.add(0, "a")
    >>> index.best("what is the daily meal limit".split(), family="b")
    0.833
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable


class JaccardIndex:
    def __init__(self, corpus: Iterable[str], *, threshold: float) -> None:
        self.threshold = threshold
        self._texts = list(corpus)
        frequency = Counter(w for t in self._texts for w in set(t.split()))
        self._rank = {w: (n, w) for w, n in frequency.items()}
        self._postings: dict[str, list[int]] = defaultdict(list)
        self._sets: dict[int, tuple[str, set[str]]] = {}

    def _prefix(self, words: set[str]) -> list[str]:
        ordered = sorted(words, key=lambda w: self._rank.get(w, (0, w)))
        return ordered[: len(ordered) - math.ceil(self.threshold * len(ordered)) + 1]

    def best(self, words: Iterable[str], *, family: str) -> float:
        """Highest similarity to an added set of another family among those that can reach the threshold."""
        words = set(words)
        if not words:
            return 0.0
        candidates = {i for w in self._prefix(words) for i in self._postings.get(w, ())}
        best = 0.0
        for i in candidates:
            fam, other = self._sets[i]
            if fam != family:
                best = max(best, len(words & other) / len(words | other))
        return round(best, 3)

    def add(self, i: int, family: str, words: Iterable[str] | None = None) -> None:
        """Add corpus entry i (or the given words) under a family whose members are never compared."""
        words = set(words if words is not None else self._texts[i].split())
        self._sets[i] = (family, words)
        for w in self._prefix(words):
            self._postings[w].append(i)
