"""Question/answer generators: one pair or more per fact in a chunk.

`extractive` is model-free and deterministic: it finds the facts of a chunk (a key span
of a sentence: an amount, count, date, year, time, day, address or name; a definition, a
name given with "is called", an acronym, a rule with must/should) and asks each one in
several phrasings with short answers copied from the chunk (framework.dataset.phrasings),
plus one entity-centred family per name the chunk mentions more than once
(framework.dataset.entities). A per-chunk cap takes the phrasings round-robin, so every
fact is trained before any fact gets a fifth wording. Lines wrapped by a PDF's page width
are joined back into sentences first.

`llm` asks a teacher model (framework.dataset.teacher) for a question and answer per chunk
and parses its reply; a reply with a question but no answer gets the chunk sentence
that best matches the question; a reply that does not parse is asked again with a
stricter reminder (`dataset.teacher.parse_attempts` in all), then skipped and counted.

Example:
    >>> pairs = extractive_pairs("Employees must submit receipts within 30 days.")
    >>> sorted(p.question for p in pairs if p.kind.startswith("number"))[0]
    'Can you tell me within how many days employees must submit receipts?'
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import replace
from typing import Callable, Sequence

from framework import prompts
from framework.config import DatasetConfig
from framework.dataset.entities import entity_families
from framework.dataset.phrasings import called_name, span_family, term_families
from framework.dataset.spans import find_spans, is_prose
from framework.records import Chunk, QAPair
from framework.text import sentences, words

def _proper_words(text: str) -> set[str]:
    """Words written capitalised after a sentence's first word: names to keep capitalised."""
    return {w for s in sentences(text) for w in re.findall(r"(?<=\s)[A-Z][\w-]*", s)}


def _sentence_answers(fam: list[QAPair], sentence: str) -> list[QAPair]:
    """The family with the source sentence as every answer (a reordered form keeps its reordered sentence)."""
    answer = sentence if sentence.endswith((".", "!")) else sentence + "."
    return [p if p.kind.endswith(":reordered") else replace(p, answer=answer) for p in fam]


def fact_families(text: str, *, title: str = "", answer_form: str = "sentence") -> list[list[QAPair]]:
    """Every fact of a chunk as a family of phrasings (framework.dataset.phrasings), in reading order,
    then one entity family per name the chunk mentions in two sentences or more.

    `answer_form: sentence` answers each phrasing with the source sentence (what a reader expects
    from an assistant, and what one-sentence reference answers look like); `short` with the key
    span alone where the form allows (`28 calendar days.`).
    """
    proper = _proper_words(text)
    out: list[list[QAPair]] = []
    for s in sentences(text):
        s = s.replace("**", "").replace("__", "").strip()
        body = s.rstrip(".!")
        if s.endswith("?") or not is_prose(s):
            continue
        found = term_families(s, title=title, proper=proper)
        called = called_name(body)
        for span in find_spans(body, proper=proper):
            if called and called[0] <= span.start < called[1]:
                continue
            if fam := span_family(s, span, title=title, proper=proper):
                found.append(fam)
        out.extend(_sentence_answers(f, s) if answer_form == "sentence" else f for f in found)
    return out + entity_families(text, title=title, proper=proper)


def select_rows(families: list[list[QAPair]], cap: int) -> list[QAPair]:
    """At most `cap` pairs: every fact's first phrasing, then every fact's second, and so on.

    A per-chunk budget keeps training time in check; taking phrasings round-robin spends it
    on every fact before it spends it on a fifth rewording of one.
    """
    out: list[QAPair] = []
    depth = max((len(f) for f in families), default=0)
    for i in range(depth):
        for fam in families:
            if i < len(fam):
                if len(out) == cap:
                    return out
                out.append(fam[i])
    return out


def extractive_pairs(text: str, *, title: str = "", cap: int | None = None,
                     answer_form: str = "sentence") -> list[QAPair]:
    """The chunk's question/answer pairs, every fact in several phrasings; at most `cap` (round-robin)."""
    families = fact_families(text, title=title, answer_form=answer_form)
    return select_rows(families, cap) if cap else [p for fam in families for p in fam]


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
    parsed = _llm_families([QAPair(q, a, "llm", _llm_fact(chunk_text, q)) for q, a in parse_llm_pairs(reply)],
                           chunk_text)
    if parsed or not (m := _BARE_Q.search(reply.replace("**", ""))):
        return parsed
    answer = answer_from_chunk(m["q"], chunk_text)
    return [QAPair(m["q"].strip(), answer, "extracted_answer", _llm_fact(chunk_text, m["q"]))] if answer else []


def _llm_families(pairs: list[QAPair], chunk_text: str) -> list[QAPair]:
    """Questions the teacher answered with the same short answer ask one fact: they share the fact, and
    the first is the parent of the others, so the split can hold out one phrasing of a trained fact."""
    first: dict[str, QAPair] = {}
    out = []
    for p in pairs:
        key = " ".join(words(p.answer))
        if key in first and len(p.answer.split()) <= 12:
            p = replace(p, fact=first[key].fact, parent=first[key].qid)
        else:
            first.setdefault(key, p)
        out.append(p)
    return out


def _llm_fact(chunk_text: str, question: str) -> str:
    return "llm:" + hashlib.sha256(f"{chunk_text}\n{question}".encode()).hexdigest()[:16]


def llm_pairs(teacher, chunk_texts: Sequence[str], *, max_new_tokens: int = 160, attempts: int = 2,
              show_progress: bool = False, per_chunk: int = 6,
              answer_form: str = "sentence") -> tuple[list[list[QAPair] | None], Counter]:
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
        replies = ask_teacher(teacher, [prompts.qa_from_passage(chunk_texts[i], strict=attempt > 0, n=per_chunk,
                                                                answer_form=answer_form)
                                        for i in todo],
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
        per_chunk = [extractive_pairs(c.text, title=c.title, cap=cfg.max_questions_per_chunk,
                                      answer_form=cfg.answer_form)
                     for c in track(chunks, "synthesize (extractive)", enabled=show_progress)]
        return per_chunk, Counter()
    t = cfg.teacher
    per_chunk, stats = llm_pairs(teacher(), [c.text for c in chunks], max_new_tokens=t.max_new_tokens,
                                 attempts=t.parse_attempts, show_progress=show_progress,
                                 per_chunk=min(8, cfg.max_questions_per_chunk), answer_form=cfg.answer_form)
    return [None if ps is None else ps[: cfg.max_questions_per_chunk] for ps in per_chunk], stats
