"""The knowledge check: does the adapter answer its documents' facts, asked in words it never trained on?

After each epoch (and once on the base model before training) the model answers a capped
number of probes closed-book, with a short token budget. A probe is one trained fact
(training rows sharing a `fact_id`), asked by framework.training.rewording (a gap in the
fact's statement, synonyms, a template family of its own) and scored by whether the
fact's key span appears in the answer. Probes are spread over the trained documents in
turn, so each document gets its share; a probe that happens to equal a training question
is left out. Questions of the user's own (`finetune.knowledge_questions`, JSONL with the
gold document) on trained documents are asked as written, in addition. The summary (accuracy with a 95% bootstrap interval, per document hits and
whether the check passed) goes into the adapter's manifest; `finetune.keep` chooses the
epoch by it, and `auto` routing reads the per-document verdicts.

Example:
    >>> summary = summarize([{"doc_id": "d1", "hit": True}, {"doc_id": "d1", "hit": False}], seed=0)
    >>> summary["hits"], summary["probes"], summary["documents"]["d1"]["known"]
    (1, 2, True)
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
import torch

from framework import prompts
from framework.dataset.store import read_jsonl
from framework.training.rewording import key_span, reword, span_hit

log = logging.getLogger(__name__)
KNOWN_AT = 0.5  # a document passes the check when at least this share of its probes is answered


def _title(doc_id: str) -> str:
    """A readable document title from its id ("hr:policies/annual-leave.md" -> "Annual Leave")."""
    stem = PurePosixPath(doc_id.split(":", 1)[-1]).stem
    return re.sub(r"[-_]+", " ", stem).strip().title() or "the documents"


def build_probes(rows: Sequence[dict], *, limit: int, seed: int = 0) -> list[dict]:
    """Up to `limit` held-out probes over the trained facts of `rows`, documents taken in turn."""
    facts: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("doc_id") and r.get("answer") and r.get("mode", "finetuned") == "finetuned":
            facts[(r["doc_id"], r.get("fact_id") or r["answer"])].append(r)
    trained = {_key(r["question"]) for r in rows if r.get("question")}
    rng = random.Random(seed)
    by_doc: dict[str, list[dict]] = defaultdict(list)
    for (doc, _), group in sorted(facts.items()):
        statement = max((r["answer"] for r in group), key=len)
        short = min((r["answer"] for r in group), key=len)
        span = (key_span(short, group[0]["question"]) if short != statement else None) or \
            key_span(statement, group[0]["question"])
        if not span or span not in statement or not 3 <= len(statement.replace(span, " ").split()) <= 60:
            continue  # no span, too little of the statement around it to ask by, or a passage, not a fact
        question = reword(statement, span, title=_title(doc), rng=rng)
        if _key(question) not in trained:
            by_doc[doc].append({"doc_id": doc, "question": question, "span": span, "statement": statement})
    for probes in by_doc.values():
        rng.shuffle(probes)
    out, docs = [], sorted(by_doc)
    while len(out) < limit and any(by_doc[d] for d in docs):
        out += [by_doc[d].pop() for d in docs if by_doc[d]][:limit - len(out)]
    return out


def question_file_probes(path: Path, documents: Sequence[str]) -> list[dict]:
    """Probes from the user's own questions (JSONL rows with `question`, `answer` and the gold `document`,
    `doc_id` or `sources`): those on a trained document whose answer has a key span, asked as written."""
    probes = []
    for row in read_jsonl(path):
        gold = next((row[f] for f in ("sources", "document", "doc_id") if row.get(f)), None)
        names = [gold] if isinstance(gold, str) else list(gold or [])
        doc = next((d for n in names for d in documents if d == n or d.endswith((f":{n}", f"/{n}"))), None)
        span = key_span(row.get("answer", ""), row.get("question", ""))
        if doc and span:
            probes.append({"doc_id": doc, "question": row["question"], "span": span, "statement": row["answer"]})
    return probes


def _key(question: str) -> str:
    return " ".join(re.findall(r"\w+", question.lower()))


@torch.no_grad()
def closed_book_answers(model, tokenizer, questions: Sequence[str], *, max_new_tokens: int,
                        batch_size: int = 16) -> list[str]:
    """Greedy closed-book answers in the prompt the router serves `finetuned` with."""
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    # A bf16 base (finetune.base_precision) answers under the same autocast it trains under.
    bf16 = any(p.dtype == torch.bfloat16 for p in model.parameters())
    try:
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            answers = _generate(model, tokenizer, questions, max_new_tokens, batch_size)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def _generate(model, tokenizer, questions: Sequence[str], max_new_tokens: int, batch_size: int) -> list[str]:
    answers = []
    for start in range(0, len(questions), batch_size):
        texts = [tokenizer.apply_chat_template(prompts.closed_book(q), add_generation_prompt=True, tokenize=False)
                 for q in questions[start:start + batch_size]]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                             pad_token_id=tokenizer.pad_token_id)
        answers += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return answers


def check(model, tokenizer, probes: Sequence[dict], *, max_new_tokens: int, seed: int = 0) -> dict:
    """Answer every probe closed-book and summarize the hits (see `summarize`)."""
    answers = closed_book_answers(model, tokenizer, [p["question"] for p in probes], max_new_tokens=max_new_tokens)
    return summarize([{"doc_id": p["doc_id"], "hit": span_hit(a, p["span"])} for p, a in zip(probes, answers)],
                     seed=seed)


def summarize(results: Sequence[dict], *, seed: int = 0, resamples: int = 2000) -> dict:
    """Accuracy with a 95% percentile-bootstrap interval (the method of framework.evaluation.stats, which
    training may not import), and per document: probes, hits, and `known` (hits/probes >= KNOWN_AT)."""
    hits = np.array([float(r["hit"]) for r in results])
    low = high = None
    if len(hits):
        rng = np.random.default_rng(seed)
        means = hits[rng.integers(0, len(hits), size=(resamples, len(hits)))].mean(axis=1)
        low, high = (round(float(x), 4) for x in np.percentile(means, [2.5, 97.5]))
    docs: dict[str, dict] = {}
    for r in results:
        d = docs.setdefault(r["doc_id"], {"probes": 0, "hits": 0})
        d["probes"] += 1
        d["hits"] += int(r["hit"])
    for d in docs.values():
        d["known"] = d["hits"] / d["probes"] >= KNOWN_AT
    return {"probes": len(hits), "hits": int(hits.sum()), "accuracy": round(float(hits.mean()), 4) if len(hits) else None,
            "low": low, "high": high, "documents": dict(sorted(docs.items()))}
