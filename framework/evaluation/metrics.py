"""Score answers against reference answers, per mode, on held-out questions.

Metrics (all in [0, 1] except latency):
- token F1: SQuAD-style overlap of normalised answer and reference tokens.
- answer recall: share of the reference's content tokens found in the answer; high
  when the fact is present even in a longer answer.
- retrieval hit rate: share of questions whose gold document (`document`, a file name,
  or `doc_id`, as the eval split writes) is among the sources, for modes that retrieve.
- latency: seconds per question (generation runs in batches; total time / questions).

Example:
    >>> round(token_f1("28 days of leave", "Employees get 28 days of leave."), 2)
    0.8
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from pathlib import Path

_STOP = set("a an the of to in on at for and or is are be by with from as that this it its do does i my we our "
            "you your can what how which when who".split())


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[.,:][0-9]+)*", text.lower())


def token_f1(answer: str, reference: str) -> float:
    a, r = _tokens(answer), _tokens(reference)
    common = sum((Counter(a) & Counter(r)).values())
    if not a or not r or common == 0:
        return 0.0
    p, rec = common / len(a), common / len(r)
    return 2 * p * rec / (p + rec)


def answer_recall(answer: str, reference: str) -> float:
    ref = {t for t in _tokens(reference) if t not in _STOP}
    return len(ref & set(_tokens(answer))) / len(ref) if ref else 0.0


def load_questions(path: Path) -> list[dict]:
    """Read a JSONL file of {"question", "answer", optional "document"}; errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"questions file {path} not found (expected a JSONL file)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not row.get("question") or not row.get("answer"):
            raise ValueError(f"{path}:{n}: each line needs non-empty 'question' and 'answer' fields")
        gold = row.get("document", row.get("doc_id"))
        if gold is not None and not (isinstance(gold, str) or
                                     (isinstance(gold, list) and all(isinstance(g, str) for g in gold))):
            raise ValueError(f"{path}:{n}: 'document' must be a file name or a list of file names")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no questions found")
    return rows


def _matches(source, document: str) -> bool:
    """A document name matches a whole path component: 'a.md' matches 'docs:x/a.md', not 'data.md'.

    'plan.pdf#page=7' also requires the chunk to have text from page 7 (pages are 1-based)."""
    name, _, page = document.partition("#page=")
    if page and not (page.isdigit() and int(page) in source.pages):
        return False
    return source.doc_id == name or any(
        x.split("#", 1)[0].endswith(sep + name) for x in (source.doc_id, source.uri) for sep in (":", "/"))


def _gold_list(document) -> list[str]:
    return [document] if isinstance(document, str) else list(document or [])


def retrieval_metrics(retrieved: list[list], gold: list, ks: tuple[int, ...] = (1, 3, 5, 10)) -> dict:
    """hit@k (a chunk of a gold document in the top k), recall@k (the share of a question's
    gold documents found in the top k) and MRR of the first gold chunk.

    Each gold entry is one document name or a list of them."""
    golds = [_gold_list(g) for g in gold]
    ranks = [next((r for r, s in enumerate(sources, 1) if any(_matches(s, d) for d in g)), None)
             for sources, g in zip(retrieved, golds)]
    out: dict = {"questions": len(gold)}
    for k in ks:
        out[f"hit@{k}"] = round(statistics.fmean(r is not None and r <= k for r in ranks), 4) if ranks else 0.0
    for k in ks:
        shares = [sum(any(_matches(s, d) for s in sources[:k]) for d in g) / len(g)
                  for sources, g in zip(retrieved, golds) if g]
        out[f"recall@{k}"] = round(statistics.fmean(shares), 4) if shares else 0.0
    out["mrr"] = round(statistics.fmean(1 / r if r else 0.0 for r in ranks), 4) if ranks else 0.0
    return out


def _hit(answer, document) -> bool | None:
    golds = _gold_list(document)
    if not golds:
        return None
    return any(_matches(s, d) for s in answer.sources for d in golds)


def score(answers: list, questions: list[dict], seconds: float) -> dict:
    f1 = [token_f1(a.text, q["answer"]) for a, q in zip(answers, questions)]
    rec = [answer_recall(a.text, q["answer"]) for a, q in zip(answers, questions)]
    hits = [h for a, q in zip(answers, questions)
            if (h := _hit(a, q.get("document") or q.get("doc_id"))) is not None]
    retrieves = any(a.sources for a in answers) or any(a.mode in ("rag", "combined") for a in answers)
    return {
        "questions": len(questions),
        "token_f1": round(statistics.fmean(f1), 4),
        "answer_recall": round(statistics.fmean(rec), 4),
        "retrieval_hit_rate": round(statistics.fmean(hits), 4) if hits and retrieves else None,
        "latency_s": round(seconds / max(1, len(questions)), 3),
    }


def score_by_split_kind(answers: list, questions: list[dict]) -> dict:
    """On a dataset's eval split, the scores of paraphrased and held-out-document questions apart.

    Empty for question files without `split_kind`."""
    kinds = sorted({q["split_kind"] for q in questions if q.get("split_kind")})
    if not kinds:
        return {}
    out = {}
    for kind in kinds:
        idx = [i for i, q in enumerate(questions) if q.get("split_kind") == kind]
        out[kind] = {k: v for k, v in score([answers[i] for i in idx], [questions[i] for i in idx], 0.0).items()
                     if k != "latency_s"}
    return {"by_split_kind": out}
