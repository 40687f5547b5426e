"""Paraphrased variants of each question, tagged with the question they reword.

Knowledge injected by finetuning is recalled far better when the training set asks
each fact in several ways (Ovadia et al. 2023). With the `llm` generator the teacher
rewrites each question; with `extractive`, fixed templates do it deterministically
(wh-word swaps, indirect questions, the document's title as context). Each variant
keeps its parent's answer and fact and records the parent's id, so the split can hold
out a paraphrase of a trained question on purpose and never by accident.

Example:
    >>> p = QAPair("How many days of leave?", "28 days.", "number", "Leave is 28 days.")
    >>> [v.question for v in template_paraphrases(p, 2, title="Handbook")]
    ['What number of days of leave?', 'According to Handbook, how many days of leave?']
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

from framework import prompts
from framework.dataset.generators import QAPair, ask_teacher

_SWAPS = (("how many", "what number of"), ("how much", "what amount"), ("at what time", "when"),
          ("on which day", "what day"), ("in which year", "in what year"), ("what date", "which date"),
          ("which e-mail address", "what e-mail address"), ("which Slack channel", "what Slack channel"))
_WHAT_IS = re.compile(r"^What (?P<verb>is|are) (?P<rest>.+)\?$")


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:] if text[:1].isupper() and not text[1:2].isupper() else text


def _templates(question: str, title: str) -> list[str]:
    out = []
    for old, new in _SWAPS:
        if re.search(rf"\b{re.escape(old)}\b", question, re.IGNORECASE):
            swapped = re.sub(rf"\b{re.escape(old)}\b", new, question, count=1, flags=re.IGNORECASE)
            out.append(swapped[0].upper() + swapped[1:])
            break
    if (m := _WHAT_IS.match(question)) and not re.search(r"\b(?:called|named|known as)$", m["rest"]):
        out.append(f"Do you know what {m['rest']} {m['verb']}?")
    body = question.rstrip("?")
    if title and title.lower() not in question.lower():
        out.append(f"According to {title}, {_lower_first(question)}")
    out.append(f"{body}, according to the company documents?")
    out.append(f"I would like to know: {_lower_first(question)}")
    return out


def template_paraphrases(pair: QAPair, n: int, *, title: str = "") -> list[QAPair]:
    """Up to n deterministic rewordings, each different from the question and from each other."""
    seen = {pair.question.lower()}
    out = []
    for text in _templates(pair.question, title.strip()):
        if len(out) == n:
            break
        if text.lower() not in seen:
            seen.add(text.lower())
            out.append(replace(pair, question=text, kind="paraphrase", parent=pair.qid))
    return out


_NUMBERING = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|Question\s*\d*\s*:)\s*", re.IGNORECASE)


def parse_paraphrases(reply: str, question: str, n: int) -> list[str]:
    """Lines that are questions, minus numbering and quotes, minus the original; at most n."""
    out: list[str] = []
    seen = {question.strip().lower()}
    for line in reply.replace("**", "").splitlines():
        text = _NUMBERING.sub("", line).strip().strip("\"'").strip()
        if text.endswith("?") and len(text) > 8 and text.lower() not in seen:
            seen.add(text.lower())
            out.append(text)
    return out[:n]


def llm_paraphrases(teacher, pairs: list[QAPair], n: int, *, max_new_tokens: int = 160, attempts: int = 2,
                    show_progress: bool = False) -> tuple[list[list[QAPair]], Counter]:
    """Teacher-written rewordings per pair; a reply with none is asked again, then skipped and counted."""
    stats: Counter = Counter()
    out: list[list[QAPair]] = [[] for _ in pairs]
    todo = list(range(len(pairs)))
    for attempt in range(attempts):
        if not todo:
            break
        if attempt:
            stats["paraphrase_retries"] += len(todo)
        replies = ask_teacher(teacher, [prompts.paraphrase_question(pairs[i].question, n) for i in todo],
                              max_new_tokens=max_new_tokens, description=f"paraphrase (try {attempt + 1})",
                              show_progress=show_progress)
        retry = []
        for i, reply in zip(todo, replies):
            texts = parse_paraphrases(reply, pairs[i].question, n) if reply is not None else []
            if reply is None:
                stats["teacher_error"] += 1
            elif texts:
                out[i] = [replace(pairs[i], question=t, kind="paraphrase", parent=pairs[i].qid) for t in texts]
            else:
                retry.append(i)
        todo = retry
    stats["paraphrase_unparseable"] += len(todo)
    return out, stats
