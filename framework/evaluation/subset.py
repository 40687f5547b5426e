"""A budgeted subset of a document set with reference questions, for the four-mode comparison.

Training on a whole real corpus takes hours on a laptop CPU, and a fair comparison of
`finetuned`/`combined` needs questions whose documents the adapter learned *and* questions
whose documents it never saw. So:

1. `plan_budget` turns minutes into a number of questions (evaluation time grows with them)
   and a number of words the adapter may train on (training time grows with them);
2. `pick_subset` samples questions (seeded) and splits them by their gold documents into
   `trained_documents` questions (every gold document trained on, within the word budget)
   and `untrained_documents` questions (no gold document trained on); no question straddles
   both. Documents no sampled question cites are added as distractors, indexed but never
   trained on, so retrieval still has to find the right page among wrong ones.

Example:
    >>> qs = [{"question": f"q{i}", "answer": "a", "sources": [f"d{i}.md"]} for i in range(4)]
    >>> s = pick_subset(qs, {f"d{i}.md": 100 for i in range(6)}, n_questions=2, max_trained_words=1000, seed=0)
    >>> len(s.trained), len(s.untrained), len(s.distractors), [q["split_kind"] for q in s.questions]
    (1, 1, 2, ['trained_documents', 'untrained_documents'])
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

from framework.evaluation.gold import gold_sources

TRAINED, UNTRAINED = "trained_documents", "untrained_documents"
# Rates behind plan_budget, measured on the 2-core development machine (docs/guides/evaluation.md):
EVAL_SECONDS_PER_QUESTION = 8.0  # the four modes answering one question (80 new tokens, bundled 135M generator)
TRAIN_TOKENS_PER_SECOND = 150.0  # LoRA on the bundled generator, bf16
TOKENS_PER_WORD_EPOCH = 15.0  # training tokens per document word per epoch (synthetic questions, RAFT rows)


@dataclass(frozen=True)
class Budget:
    minutes: float
    questions: int
    trained_words: int
    eval_seconds: float
    train_seconds: float


def plan_budget(minutes: float, *, available: int, epochs: float = 3.0) -> Budget:
    """Questions and trained words that fit `minutes`: 60% of the time for training, about two
    questions per three minutes (at least 6) for evaluation, the rest for ingest and synthesis."""
    if minutes <= 0:
        raise ValueError(f"--budget-minutes {minutes} must be positive")
    questions = max(6, min(available, round(minutes * 2 / 3)))
    train_s = 0.6 * minutes * 60
    words = int(train_s * TRAIN_TOKENS_PER_SECOND / (TOKENS_PER_WORD_EPOCH * epochs))
    return Budget(minutes=minutes, questions=questions, trained_words=words,
                  eval_seconds=questions * EVAL_SECONDS_PER_QUESTION, train_seconds=train_s)


@dataclass(frozen=True)
class Subset:
    trained: tuple[str, ...]
    untrained: tuple[str, ...]
    distractors: tuple[str, ...]
    questions: tuple[dict, ...]  # each with split_kind TRAINED or UNTRAINED

    def to_dict(self) -> dict:
        kinds = [q["split_kind"] for q in self.questions]
        return {"questions": {TRAINED: kinds.count(TRAINED), UNTRAINED: kinds.count(UNTRAINED)},
                "trained_documents": list(self.trained), "untrained_documents": list(self.untrained),
                "distractor_documents": list(self.distractors)}


def _documents(row: dict) -> set[str]:
    return {g.split("#page=", 1)[0] for g in gold_sources(row)}


def pick_subset(questions: Sequence[dict], words: Mapping[str, int], *, n_questions: int, max_trained_words: int,
                distractors: int | None = None, seed: int = 0) -> Subset:
    """Sample about `n_questions` questions, half on trained documents (within `max_trained_words`, but at
    least one question), half on untrained ones; `words` maps every document to its length and is where
    distractors come from (as many as the cited documents unless `distractors` says)."""
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    sides = {TRAINED: set(), UNTRAINED: set()}
    picked: dict[str, list[dict]] = {TRAINED: [], UNTRAINED: []}
    quota = {TRAINED: (n_questions + 1) // 2, UNTRAINED: n_questions // 2}
    for i in order:
        docs = _documents(questions[i])
        unknown = docs - set(words)
        if not docs or unknown:
            continue
        for side, other in sorted([(TRAINED, UNTRAINED), (UNTRAINED, TRAINED)], key=lambda s: len(picked[s[0]])):
            grown = sides[side] | docs
            fits = side == UNTRAINED or not picked[TRAINED] or sum(words[d] for d in grown) <= max_trained_words
            if len(picked[side]) < quota[side] and not docs & sides[other] and fits:
                sides[side] = grown
                picked[side].append({**questions[i], "split_kind": side})
                break
        if all(len(picked[s]) >= quota[s] for s in quota):
            break
    cited = sides[TRAINED] | sides[UNTRAINED]
    rest = sorted(set(words) - cited)
    extra = random.Random(seed + 1).sample(rest, min(len(rest), len(cited) if distractors is None else distractors))
    return Subset(trained=tuple(sorted(sides[TRAINED])), untrained=tuple(sorted(sides[UNTRAINED])),
                  distractors=tuple(sorted(extra)), questions=tuple(picked[TRAINED] + picked[UNTRAINED]))
