"""Several phrasings of one fact, with short answers: what the extractive generator trains on.

A small model finetuned on one question per fact, answered by the whole source sentence,
learns to recite that sentence and cannot recall the fact asked in other words
(FineTuneBench, arXiv 2411.05059); the same facts asked in several varied forms are
recalled (Physics of Language Models 3.1, arXiv 2309.14316). So each key span of a
sentence (`framework.dataset.spans`) becomes one family of pairs, asked:

- `echo`: the sentence with the span replaced by its wh-phrase ("... receives how many days?"),
- `fronted`: the wh-phrase first, with the auxiliary or do inverted ("How many days does ... receive?"),
- `indirect`: as an indirect question ("Do you know how many days every employee receives?"),
- `reordered`: with a clause moved to the other end of the question,
- `subject`: from the other side: the span given, the subject asked ("Which employee receives 28 days?"),
- `reverse`: the span given, the statement asked ("What is said about 28 days in the Handbook?"),

answered in turn by the short span, the span with the rest of its clause, the sentence,
the reordered sentence and the subject, every one copied from the source. Forms the
sentence does not allow (no clear verb, the span inside the subject) are skipped, never
guessed. Definitions, names ("is called"), acronyms and rules get their own families.

Example:
    >>> pairs = span_family("Every employee receives 28 calendar days of leave.", title="Handbook")
    >>> {p.kind.split(":")[1]: p.question for p in pairs}["fronted"]
    'How many calendar days does every employee receive of leave?'
    >>> {p.kind.split(":")[1]: p.answer for p in pairs}["echo"]
    '28 calendar days.'
"""

from __future__ import annotations

import re
import zlib
from dataclasses import replace

from framework.dataset.filters import repeats_question
from framework.dataset.spans import Span, base_form, clause, find_spans, head_noun, is_proper, lower_first, reorder
from framework.dataset.spans import upper_first
from framework.records import QAPair

_ASK = ("Do you know", "Can you tell me", "Could you tell me", "I would like to know")
_PRONOUNS = {"it", "they", "this", "these", "that", "those", "we", "you", "he", "she", "there", "i"}
_HOLE = "\u2047"  # a placeholder for the span while the question is rearranged


def _q(text: str) -> str:
    return upper_first(re.sub(r"\s+", " ", text).strip().rstrip(" ,.!?") + "?")


def _a(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip().rstrip(" ,;:")
    return upper_first(text if text.endswith((".", "!", "?")) else text + ".")


def family(fact: str, kind: str, forms: list[tuple[str, str, str]]) -> list[QAPair]:
    """Pairs of one fact from (form, question, answer); the first is the parent of the others.

    Which form comes first turns with a hash of the fact, so a per-chunk budget that takes
    each fact's first pair still trains every form across the chunk.

    Repeated questions are dropped, so a form that came out the same as another does not count twice.
    """
    out: list[QAPair] = []
    seen: set[str] = set()
    turn = zlib.crc32(f"{fact}:{kind}".encode()) % max(1, len(forms))
    for form, question, answer in forms[turn:] + forms[:turn]:
        key = question.lower()
        if key in seen or not answer.strip(" .") or len(question.split()) < 4 or repeats_question(question, answer):
            continue
        seen.add(key)
        pair = QAPair(question, answer, f"{kind}:{form}", fact)
        out.append(replace(pair, parent=out[0].qid) if out else pair)
    return out


def _subject_question(c, rest: str) -> str | None:
    """'Which employee receives ...?' / 'Who leads ...?': the statement with its subject asked for."""
    subject = c.subject
    if subject.lower() in _PRONOUNS or not rest:
        return None
    asker = "Who" if is_proper(subject) else f"Which {head_noun(subject)}"
    return _q(f"{asker} {c.verb} {rest}")


def span_family(sentence: str, span: Span | None = None, *, title: str = "",
                proper: set[str] = frozenset()) -> list[QAPair]:
    """The phrasings of one span of a sentence (its first span when none is given)."""
    body = sentence.strip().rstrip(".!")
    span = span or next(iter(find_spans(body, proper=proper)), None)
    if span is None or span.end > len(body):
        return []
    c = clause(body)
    if is_modifier(body, span, c):
        return []
    wh, start = span.wh(body)
    prefix, suffix = body[:start].rstrip(), body[span.end:]
    short, clause_answer = _a(span.text), _a(span.text + suffix) if len(suffix.split()) <= 8 else _a(span.text)
    forms = [("echo", _q(f"{prefix} {wh}{suffix}"), short)]
    in_rest = c is not None and start >= len(c.subject) + len(c.verb) + 2
    coordinated = re.match(r"^(?:,| and | or )", suffix) or re.search(r"(?:,| and| or)$", prefix)
    if in_rest and not coordinated:
        between = body[len(c.subject) + len(c.verb) + 2: start]
        subj = lower_first(c.subject, proper)
        lead = f"{c.verb.lower()} {subj}" if c.aux else f"does {subj} {base_form(c.verb)}"
        forms.append(("fronted", _q(f"{wh} {lead} {between}{suffix}"), clause_answer))
    ask = _ASK[zlib.crc32(body.encode()) % len(_ASK)]
    if not coordinated:
        forms.append(("indirect", _q(f"{ask} {wh} {lower_first(prefix, proper)}{suffix}"), _a(sentence)))
    moved = reorder(f"{prefix} {_HOLE}{suffix}", proper)
    if moved and _HOLE in moved:
        question = moved.replace(_HOLE, wh).rstrip(".")
        forms.append(("reordered", _q(upper_first(question)), _a(reorder(body, proper) or sentence)))
    if in_rest and (q := _subject_question(c, c.rest)):
        forms.append(("subject", q, _a(c.subject)))
    where = f"in {title}" if title else "in the documents"
    forms.append(("reverse", _q(f"What is said about {span.text} {where}"), _a(sentence)))
    return family(body, span.kind, forms)


_FUNCTION = set("is are was were has have had and or but of in on at for to by with from must may can will should "
                "which who that not during within before after per until under over into as via when if since "
                "because so than through across about without while where whose".split())


def is_modifier(body: str, span: Span, c) -> bool:
    """A name not worth asking for on its own: an attribute of the noun after it ('the Acme office',
    'Tallinn time'), a part of a longer subject ('the team at Acme'), or a counted unit ('3 Quill Days')."""
    if span.kind != "name":
        return False
    before = body[: span.start].rstrip().rsplit(" ", 1)[-1]
    after = body[span.end:].lstrip().split(" ", 1)[0]
    verb = c.verb if c else ""
    if after[:1].islower() and after.lower() not in _FUNCTION and after != verb:
        return True
    if before[:1].isdigit():
        return True
    return c is not None and span.end <= len(c.subject) and span.text != c.subject


def called_name(body: str) -> tuple[int, int] | None:
    """Where the name of an 'X is called NAME' sentence is, so its span is asked only as a name."""
    m = _CALLED.match(body)
    return (m.start("name"), m.end("name")) if m else None


_CALLED = re.compile(r"^(?P<subj>[^,;:]{2,80}?) (?P<verb>is|are|was|were) (?P<how>called|named|known as) "
                     r"(?P<name>[^,;]+?)(?P<tail>(?:,| and | which | who ).*)?$")
_COPULA = re.compile(r"^(?P<subj>[^,;:]{2,60}?) (?P<verb>is|are) (?P<rest>(?:a|an|the|one of) .{3,})$")
_DEFINE = re.compile(r"^(?P<subj>[^,;:]{2,60}?) (?P<verb>means|refers to|stands for|is defined as) (?P<rest>.+)$")
_DEFINE_Q = {"means": "What does {s} mean", "refers to": "What does {s} refer to",
             "stands for": "What does {s} stand for", "is defined as": "How is {s} defined"}
_ACRONYM = re.compile(r"\b(?P<long>(?:[A-Z][a-z]+ ){1,5}[A-Z][a-z]+) \((?P<short>[A-Z]{2,6})\)")
_MODAL = re.compile(r"^(?P<subj>[^,;:]{2,80}?) (?P<modal>must not|must|should not|should|cannot|may not|is required to|"
                    r"are required to) (?P<rest>.+)$")


def term_families(sentence: str, *, title: str = "", proper: set[str] = frozenset()) -> list[list[QAPair]]:
    """Families for names ('X is called Y'), definitions ('X is a ...', 'X means ...'), acronyms and rules."""
    body = sentence.strip().rstrip(".!")
    out: list[list[QAPair]] = []
    where = f" in {title}" if title else ""
    if m := _CALLED.match(body):
        subj = lower_first(m["subj"], proper)
        out.append(family(body, "name", [
            ("echo", _q(f"What {m['verb']} {subj} {m['how']}"), _a(m["name"])),
            ("fronted", _q(f"What name {'does' if m['verb'] == 'is' else 'do'} {subj} have{where}"), _a(m["name"])),
            ("reverse", _q(f"What is {m['name']}"), _a(f"{m['subj']}")),
            ("indirect", _q(f"Do you know what {subj} {m['verb']} {m['how']}"), _a(sentence))]))
    elif m := _COPULA.match(body):
        subj = lower_first(m["subj"], proper)
        forms = [("echo", _q(f"What {m['verb']} {subj}"), _a(m["rest"])),
                 ("indirect", _q(f"Can you tell me what {subj} {m['verb']}"), _a(sentence))]
        if m["rest"].startswith("the ") and len(m["rest"].split()) <= 10:
            forms.append(("reverse", _q(f"{'Who' if is_proper(m['subj']) else 'What'} {m['verb']} {m['rest']}"),
                          _a(m["subj"])))
        if len(m["subj"].split()) <= 8:
            out.append(family(body, "definition", forms))
    if m := _DEFINE.match(body):
        subj = lower_first(m["subj"], proper)
        out.append(family(body, "definition", [
            ("echo", _q(_DEFINE_Q[m["verb"]].format(s=subj)), _a(m["rest"])),
            ("indirect", _q(f"Do you know what {subj} {m['verb']}"), _a(sentence)),
            ("reverse", _q(f"Which term {m['verb']} {m['rest']}"), _a(m["subj"]))]))
    if m := _ACRONYM.search(body):
        out.append(family(body, "acronym", [
            ("echo", _q(f"What does {m['short']} stand for"), _a(m["long"])),
            ("reverse", _q(f"What is the abbreviation for {m['long']}"), _a(m["short"])),
            ("indirect", _q(f"Do you know what {m['short']} means{where}"), _a(sentence))]))
    if (m := _MODAL.match(body)) and m["subj"].lower() not in _PRONOUNS:
        subj, modal = lower_first(m["subj"], proper), m["modal"]
        forms = [("echo", _q(f"What is the rule for {subj}{where}"), _a(sentence))]
        if not m["rest"].startswith(("be ", "not be ")) and " not" not in modal and "cannot" not in modal:
            verb = modal.split()[0] if not modal.endswith("required to") else "must"
            forms.append(("fronted", _q(f"What {verb} {subj} do"), _a(m["rest"])))
            forms.append(("indirect", _q(f"Do you know what {subj} {verb} do{where}"), _a(sentence)))
        out.append(family(body, "rule", forms))
    return [f for f in out if f]
