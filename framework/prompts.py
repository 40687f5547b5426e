"""Every prompt ragtune sends, as plain strings, in one place.

Training and serving share these templates: the `finetuned` adapter learns on the
closed-book prompt and the `combined` adapter on the context prompt, exactly as the
router will ask at serving time. No system message is added, so the model's chat
template supplies its own (the 135M bundled model answers far worse with a custom one).

A request that is not a question (a fragment such as "parental leave contractors") is
asked as one (`as_question`), so the model answers it instead of restating it.

Example:
    >>> closed_book("How many leave days?")[0]["content"]
    'How many leave days?'
    >>> as_question("parental leave contractors")
    'What do the documents say about parental leave contractors?'
"""

from __future__ import annotations

from typing import Sequence

from framework.records import Source

CONTEXT_INSTRUCTION = "Answer the question using the company documents below."
CONTEXT_ITEM = "[{n}] {title}: {text}"
CONTEXT_QUESTION = "Question: {question}"

LLM_QA_INSTRUCTION = (
    "Read the passage and write one question an employee could ask about it, "
    "then the answer copied from the passage.\n\nPassage: {passage}\n\n"
    "Reply exactly in this format:\nQuestion: ...\nAnswer: ..."
)
# Added when a reply did not follow the format: the retry asks again, more strictly.
LLM_QA_STRICT = "\n\nYour reply must start with 'Question:' and contain a line starting with 'Answer:'."

LLM_PARAPHRASE_INSTRUCTION = (
    "Rewrite the question below in {n} different ways that keep its meaning. "
    "Write one rewritten question per line, each ending with a question mark, and nothing else.\n\n"
    "Question: {question}"
)


# A request starting with one of these is a question or an instruction already.
_ASKING = set("what which who whom whose when where why how is are was were do does did can could should would will "
              "may must shall has have had am tell explain describe list show give summarize summarise define compare "
              "find name please".split())
FRAGMENT_QUESTION = "What do the documents say about {fragment}?"
FRAGMENT_CLOSED_BOOK = "What can you tell me about {fragment}?"


def as_question(text: str, template: str = FRAGMENT_QUESTION) -> str:
    """`text` itself when it asks something; a fragment ("parental leave contractors") made a question."""
    text = text.strip()
    first = text.split(None, 1)[0].lower().strip(",:;") if text else ""
    if text.endswith("?") or first in _ASKING:
        return text
    return template.format(fragment=text.rstrip(".!"))


def closed_book(question: str) -> list[dict]:
    return [{"role": "user", "content": as_question(question, FRAGMENT_CLOSED_BOOK)}]


def with_context(question: str, sources: Sequence[Source]) -> list[dict]:
    context = "\n".join(CONTEXT_ITEM.format(n=i + 1, title=s.title, text=s.text) for i, s in enumerate(sources))
    content = f"{CONTEXT_INSTRUCTION}\n\n{context}\n\n{CONTEXT_QUESTION.format(question=as_question(question))}"
    return [{"role": "user", "content": content}]


def qa_from_passage(passage: str, *, strict: bool = False) -> list[dict]:
    content = LLM_QA_INSTRUCTION.format(passage=passage) + (LLM_QA_STRICT if strict else "")
    return [{"role": "user", "content": content}]


def paraphrase_question(question: str, n: int) -> list[dict]:
    return [{"role": "user", "content": LLM_PARAPHRASE_INSTRUCTION.format(n=n, question=question)}]
