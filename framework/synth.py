"""Question/answer generators: one pair or more per fact in a chunk.

`extractive` is model-free and deterministic: it finds statements in a chunk (a thing
is or is called something, a rule with must/may/cannot, a number, a day, an address)
and turns each into several questions whose answer is the statement itself, copied
from the chunk. Several phrasings per fact are what let a finetuned model recall the
fact when it is asked differently (Ovadia et al. 2023).

`llm` asks the configured generator model for a question and answer per chunk and
parses its reply; replies that do not parse are counted and skipped.

Example:
    >>> pairs = extractive_pairs("Employees must submit receipts within 30 days.")
    >>> pairs[0].question
    'Must employees submit receipts within 30 days?'
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from framework import prompts


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    kind: str
    fact: str  # the statement the pair asks about; pairs of one fact share it


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_MODAL = re.compile(r"^(?P<subj>[^,;:]{2,80}?) (?P<modal>must not|must|should|cannot|can|may not|may|will) "
                    r"(?P<rest>.+)$")
_COPULA = re.compile(r"^(?P<subj>[^,;:]{2,80}?) (?P<verb>is|are) (?P<rest>.+)$")
_CALLED = re.compile(r"^(?P<subj>[^,;:]{2,80}?) (?P<verb>is|are) (?P<how>called|named|known as) (?P<name>.+)$")
_AMOUNT = re.compile(r"\b\d[\d,.]*\s*(?:EUR|euros?|USD|%)(?=\W|$)|(?:EUR|€|\$)\s?\d[\d,.]*")
_COUNT = re.compile(r"(?<![\d:])\b(?P<num>\d[\d,.]*)(?![\d:])(?P<unit>(?:\s+[a-z-]+){1,2})")
_YEAR = re.compile(r"\b(?:in |since )?(?:19|20)\d\d\b")
_WEEKDAY = re.compile(r"\b(?:every |each |on )?(?:second )?(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)s?\b")
_TIME = re.compile(r"\b\d{1,2}:\d{2}\b(?:\s*(?:to|-|and)\s*\d{1,2}:\d{2})?")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_CHANNEL = re.compile(r"(?<!\w)#[a-z0-9][a-z0-9_-]+")
_DETERMINERS = ("The ", "A ", "An ", "Every ", "Each ", "All ", "Our ")


def sentences(text: str) -> list[str]:
    """Split a chunk into statements: headings are dropped, bullets become sentences."""
    out: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line).strip()
        if not line or line.startswith("#") or len(line) < 20:
            continue
        out.extend(s.strip() for s in _SENTENCE_END.split(line) if len(s.strip()) >= 20)
    return out


def _proper_words(text: str) -> set[str]:
    """Words written capitalised after a sentence's first word: names to keep capitalised."""
    return {w for s in sentences(text) for w in re.findall(r"(?<=\s)[A-Z][\w-]*", s)}


def _lower_first(phrase: str, proper: set[str]) -> str:
    """'The policy' -> 'the policy' and 'At least' -> 'at least'; 'Lumen Ledger' stays."""
    first = phrase.split(" ", 1)[0]
    if first in proper or any(c.isupper() for c in first[1:]):
        return phrase
    return phrase[0].lower() + phrase[1:]


def _echo(sentence: str, match: re.Match, wh: str) -> str:
    """Replace the matched span with a wh-phrase: 'Leave is 28 days.' -> 'Leave is how many days?'"""
    return (sentence[: match.start()] + wh + sentence[match.end():]).rstrip(" .!") + "?"


def extractive_pairs(text: str) -> list[QAPair]:
    pairs: list[QAPair] = []
    proper = _proper_words(text)
    for s in sentences(text):
        body = s.rstrip(".!")
        if s.endswith("?"):
            continue
        found: list[tuple[str, str]] = []
        if m := _CALLED.match(body):
            found.append((f"What {m['verb']} {_lower_first(m['subj'], proper)} {m['how']}?", "name"))
        elif m := _COPULA.match(body):
            if len(m["subj"].split()) <= 8:
                found.append((f"What {m['verb']} {_lower_first(m['subj'], proper)}?", "definition"))
        if m := _MODAL.match(body):
            modal = m["modal"].split()[0]
            found.append((f"{modal.capitalize()} {_lower_first(m['subj'], proper)} {m['rest']}?", "rule"))
        if m := _AMOUNT.search(s):
            found.append((_echo(s, m, "how much"), "amount"))
        elif m := _YEAR.search(s):
            found.append((_echo(s, m, "in which year"), "year"))
        elif m := _COUNT.search(s):
            unit = m["unit"].strip()
            found.append((_echo(s, m, f"how many {unit}"), "number"))
        for pattern, wh, kind in ((_WEEKDAY, "on which day", "day"), (_TIME, "at what time", "time"),
                                  (_EMAIL, "which e-mail address", "contact"), (_CHANNEL, "which Slack channel", "contact")):
            if m := pattern.search(s):
                found.append((_echo(s, m, wh), kind))
        answer = s if s.endswith((".", "!")) else s + "."
        pairs.extend(QAPair(q[0].upper() + q[1:], answer, kind, s) for q, kind in found)
    return pairs


_LLM_REPLY = re.compile(r"Question:\s*(?P<q>.+?\?)\s*\n+\s*Answer:\s*(?P<a>.+)", re.DOTALL)


def parse_llm_reply(reply: str) -> tuple[str, str] | None:
    m = _LLM_REPLY.search(reply)
    if not m:
        return None
    answer = m["a"].strip().split("\n")[0].strip()
    return (m["q"].strip(), answer) if answer else None


def llm_pairs(generator, chunk_texts: Sequence[str], *, max_new_tokens: int = 96) -> tuple[list[list[QAPair]], int]:
    """One generated pair per chunk; returns (pairs per chunk, number of unparseable replies)."""
    replies = generator.generate([prompts.qa_from_passage(t) for t in chunk_texts], adapter=None,
                                 max_new_tokens=max_new_tokens)
    out, failed = [], 0
    for reply in replies:
        parsed = parse_llm_reply(reply)
        if parsed is None:
            failed += 1
            out.append([])
            continue
        q, a = parsed
        out.append([QAPair(q, a, "llm", hashlib.sha256(q.encode()).hexdigest()[:12])])
    return out, failed


def generate_pairs(chunks: list[dict], cfg, generator: Callable, *, show_progress: bool = True):
    """Run the configured generator over chunks; returns ([(chunk, QAPair)], unparseable replies).

    `generator` is called only by the `llm` generator, so the extractive one never loads a model.
    """
    from framework.progress import track

    if cfg.generator == "extractive":
        pairs = [(c, p) for c in track(chunks, "synthesize (extractive)", enabled=show_progress)
                 for p in extractive_pairs(c["text"])[: cfg.max_questions_per_chunk]]
        return pairs, 0
    per_chunk, unparseable = llm_pairs(generator(), [c["text"] for c in chunks])
    return [(c, p) for c, ps in zip(chunks, per_chunk) for p in ps[: cfg.max_questions_per_chunk]], unparseable
