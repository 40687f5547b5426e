"""Every prompt ragtune sends, as plain strings, in one place.

Training and serving share these templates: the `finetuned` adapter learns on the
closed-book prompt and the `combined` adapter on the context prompt, exactly as the
router will ask at serving time. No system message is added, so the model's chat
template supplies its own (the 135M bundled model answers far worse with a custom one).

Example:
    >>> closed_book("How many leave days?")[0]["content"]
    'How many leave days?'
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


def closed_book(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def with_context(question: str, sources: Sequence[Source]) -> list[dict]:
    context = "\n".join(CONTEXT_ITEM.format(n=i + 1, title=s.title, text=s.text) for i, s in enumerate(sources))
    content = f"{CONTEXT_INSTRUCTION}\n\n{context}\n\n{CONTEXT_QUESTION.format(question=question)}"
    return [{"role": "user", "content": content}]


def qa_from_passage(passage: str, *, strict: bool = False) -> list[dict]:
    content = LLM_QA_INSTRUCTION.format(passage=passage) + (LLM_QA_STRICT if strict else "")
    return [{"role": "user", "content": content}]


def paraphrase_question(question: str, n: int) -> list[dict]:
    return [{"role": "user", "content": LLM_PARAPHRASE_INSTRUCTION.format(n=n, question=question)}]
