"""Question/answer generators: one pair or more per fact in a chunk.

`extractive` is model-free and deterministic: it finds statements in a chunk (a
definition: a thing is, means or is called something, an acronym; a rule with
must/may/cannot; an amount, count, year, date, day or time; a named entity; an
address) and turns each into several questions whose answer is the statement itself,
copied from the chunk. Several phrasings per fact are what let a finetuned model
recall the fact when it is asked differently (Ovadia et al. 2023). Lines wrapped by a
PDF's page width are joined back into sentences first.

`llm` asks a teacher model (framework.dataset.teacher) for a question and answer per chunk
and parses its reply; a reply with a question but no answer gets the chunk sentence
that best matches the question; a reply that does not parse is asked again with a
stricter reminder (`dataset.teacher.parse_attempts` in all), then skipped and counted.

Example:
    >>> pairs = extractive_pairs("Employees must submit receipts within 30 days.")
    >>> pairs[0].question
    'Must employees submit receipts within 30 days?'
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Callable, Sequence

from framework import prompts
from framework.config import DatasetConfig
from framework.records import Chunk, QAPair
from framework.text import sentences

_MODAL = re.compile(r"^(?P<subj>[^,;:]{2,80}?) (?P<modal>must not|must|should|cannot|can|may not|may|will) "
                    r"(?P<rest>.+)$")
_COPULA = re.compile(r"^(?P<subj>[^,;:]{2,80}?) (?P<verb>is|are) (?P<rest>.+)$")
_CALLED = re.compile(r"^(?P<subj>[^,;:]{2,80}?) (?P<verb>is|are) (?P<how>called|named|known as) (?P<name>.+)$")
_AMOUNT = re.compile(r"\b\d[\d,.]*\s*(?:EUR|euros?|USD|%)(?=\W|$)|(?:EUR|€|\$)\s?\d[\d,.]*")
_COUNT = re.compile(r"(?<![\d:])\b(?P<num>\d[\d,.]*)(?![\d:])(?P<unit>(?:\s+[a-z-]+){1,2})")
_YEAR = re.compile(r"\b(?:in |since )?(?:19|20)\d\d\b")
_WEEKDAY = re.compile(r"\b(?:every |each |on )?(?:second )?(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)s?\b")
_TIME = re.compile(r"\b\d{1,2}:\d{2}\b(?:\s*(?:to|-|and)\s*\d{1,2}:\d{2})?")
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_DATE = re.compile(rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}"
                   rf"(?:\s+\d{{4}})?\b|\b(?:19|20)\d\d-\d\d-\d\d\b|\b\d{{1,2}}/\d{{1,2}}/(?:19|20)?\d\d\b")
_DEFINE = re.compile(r"^(?P<subj>[^,;:]{2,60}?) (?P<verb>means|refers to|stands for|is defined as|covers|includes) "
                     r"(?P<rest>.+)$")
_DEFINE_Q = {"means": "What does {s} mean?", "refers to": "What does {s} refer to?",
             "stands for": "What does {s} stand for?", "is defined as": "How is {s} defined?",
             "covers": "What does {s} cover?", "includes": "What does {s} include?"}
_ACRONYM = re.compile(r"\b(?:[A-Z][a-z]+ ){1,5}[A-Z][a-z]+ \((?P<short>[A-Z]{2,6})\)")
_ENTITY = re.compile(r"(?<![\w-])[a-z]+,? (?P<ent>(?:[A-Z][A-Za-z&-]+ (?:of |and |for )?){1,4}[A-Z][A-Za-z&-]+)")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_CHANNEL = re.compile(r"(?<!\w)#[a-z0-9][a-z0-9_-]+")
_DETERMINERS = ("The ", "A ", "An ", "Every ", "Each ", "All ", "Our ")


def _proper_words(text: str) -> set[str]:
    """Words written capitalised after a sentence's first word: names to keep capitalised."""
    return {w for s in sentences(text) for w in re.findall(r"(?<=\s)[A-Z][\w-]*", s)}


def _lower_first(phrase: str, proper: set[str]) -> str:
    """'The policy' -> 'the policy' and 'At least' -> 'at least'; 'Lumen Ledger' stays."""
    words = phrase.split(" ")
    if words[0] in proper or any(c.isupper() for c in words[0][1:]) or (len(words) > 1 and words[1][:1].isupper()):
        return phrase
    return phrase[0].lower() + phrase[1:]


def _echo(sentence: str, match: re.Match, wh: str, group: int | str = 0) -> str:
    """Replace the matched span with a wh-phrase: 'Leave is 28 days.' -> 'Leave is how many days?'"""
    return (sentence[: match.start(group)] + wh + sentence[match.end(group):]).rstrip(" .!") + "?"


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
        if m := _DEFINE.match(body):
            found.append((_DEFINE_Q[m["verb"]].format(s=_lower_first(m["subj"], proper)), "definition"))
        if m := _ACRONYM.search(s):
            found.append((f"What does {m['short']} stand for?", "definition"))
        if m := _MODAL.match(body):
            modal = m["modal"].split()[0]
            found.append((f"{modal.capitalize()} {_lower_first(m['subj'], proper)} {m['rest']}?", "rule"))
        if m := _DATE.search(s):
            found.append((_echo(s, m, "what date"), "date"))
        elif m := _AMOUNT.search(s):
            found.append((_echo(s, m, "how much"), "amount"))
        elif m := _YEAR.search(s):
            found.append((_echo(s, m, "in which year"), "year"))
        elif m := _COUNT.search(s):
            unit = m["unit"].strip()
            found.append((_echo(s, m, f"how many {unit}"), "number"))
        if m := _ENTITY.search(s):
            found.append((_echo(s, m, "what", "ent"), "entity"))
        for pattern, wh, kind in ((_WEEKDAY, "on which day", "day"), (_TIME, "at what time", "time"),
                                  (_EMAIL, "which e-mail address", "contact"), (_CHANNEL, "which Slack channel", "contact")):
            if m := pattern.search(s):
                found.append((_echo(s, m, wh), kind))
        answer = s if s.endswith((".", "!")) else s + "."
        pairs.extend(QAPair(q[0].upper() + q[1:], answer, kind, s) for q, kind in found)
    return pairs


_QA_BLOCK = re.compile(r"(?im)^[\s>]*(?:\d+[.)]\s*)?(?:Question|Q)\s*\d*\s*:")
_QA_BODY = re.compile(r"^\s*(?P<q>[^\n]+?\?)\s*\n+\s*(?:Answer|A)\s*\d*\s*:\s*(?P<a>[^\n]+)", re.IGNORECASE)


_BARE_QA = re.compile(r"^\s*(?P<q>[A-Z][^?\n]{8,}\?)\s*\n+\s*(?:Answer\s*:\s*)?(?P<a>[^\n]{2,})", re.MULTILINE)


def parse_llm_pairs(reply: str) -> list[tuple[str, str]]:
    """Every `Question: ...? / Answer: ...` block in a reply; tolerates numbering, bold and Q:/A:.

    A reply without labels (small models often drop them) still counts when it is a
    question on one line and its answer on the next.
    """
    text = reply.replace("**", "").replace("\r\n", "\n")
    starts = [m.end() for m in _QA_BLOCK.finditer(text)]
    out = []
    for start, end in zip(starts, starts[1:] + [len(text)]):
        if m := _QA_BODY.match(text[start:end]):
            q, a = m["q"].strip(), m["a"].strip()
            if q and a and not a.startswith("..."):
                out.append((q, a))
    if not starts and (m := _BARE_QA.search(text)):
        out.append((m["q"].strip(), m["a"].strip()))
    return out


def parse_llm_reply(reply: str) -> tuple[str, str] | None:
    pairs = parse_llm_pairs(reply)
    return pairs[0] if pairs else None


def ask_teacher(teacher, conversations: list[list[dict]], *, max_new_tokens: int, description: str,
                show_progress: bool = False, batch: int = 16) -> list[str | None]:
    """Replies in slices, so a long run shows progress; None where the teacher gave up."""
    from framework.runtime.progress import track

    slices = [conversations[i:i + batch] for i in range(0, len(conversations), batch)]
    out: list[str | None] = []
    for part in track(slices, description, enabled=show_progress and len(slices) > 1):
        out.extend(teacher.generate(part, adapter=None, max_new_tokens=max_new_tokens))
    return out


_BARE_Q = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:Question\s*:\s*)?(?P<q>[A-Z][^?\n]{8,}\?)\s*$", re.MULTILINE)
_STOP = set("a an the of to in on at for and or is are be by with from as that this it its do does what how which "
            "when who whom whose why where can could should would will may must i my we our you your their there "
            "about any some".split())


def answer_from_chunk(question: str, chunk_text: str) -> str | None:
    """The chunk sentence sharing most content words with the question (at least two), copied as the answer.

    Small teachers often write a fair question and no answer; the answer is then taken
    from the chunk itself, so it is grounded by construction.
    """
    words = {w for w in re.findall(r"\w+", question.lower()) if w not in _STOP}
    best, score = None, 1
    for s in sentences(chunk_text):
        overlap = len(words & set(re.findall(r"\w+", s.lower())))
        if overlap > score:
            best, score = s, overlap
    return None if best is None else (best if best.endswith((".", "!", "?")) else best + ".")


def _llm_reply_pairs(reply: str, chunk_text: str) -> list[QAPair]:
    parsed = [QAPair(q, a, "llm", _llm_fact(chunk_text, q)) for q, a in parse_llm_pairs(reply)]
    if parsed or not (m := _BARE_Q.search(reply.replace("**", ""))):
        return parsed
    answer = answer_from_chunk(m["q"], chunk_text)
    return [QAPair(m["q"].strip(), answer, "extracted_answer", _llm_fact(chunk_text, m["q"]))] if answer else []


def _llm_fact(chunk_text: str, question: str) -> str:
    return "llm:" + hashlib.sha256(f"{chunk_text}\n{question}".encode()).hexdigest()[:16]


def llm_pairs(teacher, chunk_texts: Sequence[str], *, max_new_tokens: int = 160, attempts: int = 2,
              show_progress: bool = False) -> tuple[list[list[QAPair] | None], Counter]:
    """Generated pairs per chunk (None where the teacher failed) and counts: replies that never
    parsed, failed requests, retries.

    A reply that does not parse is asked again with a stricter prompt, up to `attempts`
    asks in all; a request the teacher could not complete (None) is not asked again here,
    since the teacher has already retried it.
    """
    stats: Counter = Counter()
    out: list[list[QAPair]] = [[] for _ in chunk_texts]
    todo = list(range(len(chunk_texts)))
    for attempt in range(attempts):
        if not todo:
            break
        if attempt:
            stats["parse_retries"] += len(todo)
        replies = ask_teacher(teacher, [prompts.qa_from_passage(chunk_texts[i], strict=attempt > 0) for i in todo],
                              max_new_tokens=max_new_tokens, description=f"synthesize (llm, try {attempt + 1})",
                              show_progress=show_progress)
        retry = []
        for i, reply in zip(todo, replies):
            if reply is None:
                stats["teacher_error"] += 1
                out[i] = None  # type: ignore[call-overload]  # not cached: the next run asks again
            elif parsed := _llm_reply_pairs(reply, chunk_texts[i]):
                out[i] = parsed
            else:
                retry.append(i)
        todo = retry
    stats["unparseable_reply"] += len(todo)
    return out, stats


def generate_per_chunk(chunks: list[Chunk], cfg: DatasetConfig, teacher: Callable, *,
                       show_progress: bool = True) -> tuple[list[list[QAPair] | None], Counter]:
    """Question/answer pairs for each chunk (capped per chunk; None where the teacher failed)
    and the generator's counts.

    `teacher` is called only by the `llm` generator, so the extractive one never loads a model.
    """
    from framework.runtime.progress import track

    if cfg.generator == "extractive":
        per_chunk = [extractive_pairs(c.text)[: cfg.max_questions_per_chunk]
                     for c in track(chunks, "synthesize (extractive)", enabled=show_progress)]
        return per_chunk, Counter()
    t = cfg.teacher
    per_chunk, stats = llm_pairs(teacher(), [c.text for c in chunks], max_new_tokens=t.max_new_tokens,
                                 attempts=t.parse_attempts, show_progress=show_progress)
    return [None if ps is None else ps[: cfg.max_questions_per_chunk] for ps in per_chunk], stats
