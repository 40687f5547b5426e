"""The train/eval split: held-out paraphrases of trained facts, and held-out documents.

`eval.jsonl` gets (a) one paraphrase of some facts whose other phrasings are trained (does
the adapter know the fact?) and (b) every question of held-out documents, chosen by a
hash of the document id (does it generalize?); each eval row says which in `split_kind`.

Example:
    >>> heldout_documents({"a": 5, "b": 5}, 0.0, seed=0)
    set()
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import defaultdict

from framework.records import Chunk, QAPair

log = logging.getLogger(__name__)


def heldout_documents(sizes: dict[str, int], fraction: float, seed: int) -> set[str]:
    """Documents whose every question goes to eval: about `fraction` of the chunks, by whole documents.

    Documents are taken in the order of a hash of their id (so the choice is
    deterministic and does not follow file names), skipping any that would overshoot
    the target share by half, since one large manual held out would empty the training
    set. `sizes` maps document id to its number of chunks. At least one document always
    stays for training.
    """
    total = sum(sizes.values())
    if fraction <= 0 or len(sizes) < 2 or not total:
        return set()
    target = fraction * total
    order = sorted(sizes, key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest())
    held: set[str] = set()
    share = 0
    for doc in order[:-1]:
        if share >= target:
            break
        if share + sizes[doc] <= 1.5 * target or (not held and sizes[doc] <= 2 * target):
            held.add(doc)
            share += sizes[doc]
    return held


def split_pairs(pairs: list[tuple[Chunk, QAPair]], eval_fraction: float, seed: int, *,
                heldout_docs: set[str] = frozenset()):
    """Train pairs and eval (chunk, pair, split_kind) triples; see the module docstring.

    Among the facts of trained documents with at least two phrasings, a fraction gives
    one phrasing to eval, a paraphrase when it has one. When no fact has two
    phrasings (the llm generator without paraphrases), whole facts are held out
    instead (`heldout_fact`): eval then asks about facts the adapter never saw.
    """
    evals = [(c, p, "heldout_document") for c, p in pairs if c.doc_id in heldout_docs]
    rest = [(c, p) for c, p in pairs if c.doc_id not in heldout_docs]
    by_fact: dict[str, list[int]] = defaultdict(list)
    for i, (_, p) in enumerate(rest):
        by_fact[p.fact].append(i)
    candidates = sorted(f for f, idx in by_fact.items() if len(idx) >= 2)
    rng = random.Random(seed)
    n_eval = round(eval_fraction * len(by_fact))
    if not candidates and n_eval:
        log.warning("no fact has two phrasings; holding out %d whole facts for evaluation", n_eval)
        held = {i: "heldout_fact" for f in rng.sample(sorted(by_fact), n_eval) for i in by_fact[f]}
    else:
        held = {}
        for f in rng.sample(candidates, min(n_eval, len(candidates))):
            paraphrases = [i for i in by_fact[f] if rest[i][1].parent]
            held[rng.choice(paraphrases or by_fact[f])] = "paraphrase"
    train = [x for i, x in enumerate(rest) if i not in held]
    evals += [(c, p, held[i]) for i, (c, p) in enumerate(rest) if i in held]
    return train, evals
