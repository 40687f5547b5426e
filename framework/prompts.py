"""Every prompt ragtune sends, as plain strings, in one place.

Training and serving share these templates: the `finetuned` adapter learns on the
closed-book prompt and the `combined` adapter on the context prompt, exactly as the
router will ask at serving time. No system message is added, so the model's chat
template supplies its own (the 135M bundled model answers far worse with a custom one).

A request that is not a question (a fragment such as "parental leave contractors") is
asked as one (`as_question`), so the model answers it instead of restating it; a sentence
start ("The expense limit for train travel is") is asked to be completed. An answer that
still opens with where it comes from ("The documents state that ...") loses that clause
(framework.serving.decoding.strip_preamble), so it starts with its content.

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
    "Read the passage and write up to {n} questions an employee could ask about its facts, each followed by "
    "its answer.\n"
    "- Ask each important fact (a number, name, date, place, term or rule) in two or three different ways: "
    "a who/what/when/where/how many question; the same fact asked from the other side (give the answer and ask "
    "what it belongs to); and a question with its words and clauses in another order than the passage's.\n"
    "- {answer_rule}\n"
    "- Never answer a question with its own words, and never leave a blank such as 'what.' in a question.\n"
    "- If the passage says several things about one person, product or place, add one question asking what the "
    "passage says about it, answered with those sentences.\n\nPassage: {passage}\n\n"
    "Reply exactly in this format, one block per question:\nQuestion: ...\nAnswer: ..."
)
# Added when a reply did not follow the format: the retry asks again, more strictly.
# `dataset.answer_form`: what each answer is (the same choice the extractive generator makes)
LLM_ANSWER_RULES = {
    "sentence": "Answer with one complete sentence that states the fact, its number with the unit, name, date or "
                "term copied from the passage.",
    "short": "Answer with the short fact itself (the number with its unit, the name, the date, the term) copied from "
             "the passage, or with one sentence of the passage when the question needs it.",
}
LLM_QA_STRICT = "\n\nYour reply must start with 'Question:' and contain a line starting with 'Answer:'."

LLM_PARAPHRASE_INSTRUCTION = (
    "Rewrite the question below in {n} different ways that keep its meaning and its answer. Vary them: use "
    "another question word (who, what, when, where, which, how), put the clauses in another order, use other "
    "words for the same things, and ask it as an employee would in a chat. "
    "Write one rewritten question per line, each ending with a question mark, and nothing else.\n\n"
    "Question: {question}"
)


# A request starting with one of these is a question or an instruction already.
_ASKING = set("what which who whom whose when where why how is are was were do does did can could should would will "
              "may must shall has have had am tell explain describe list show give summarize summarise define compare "
              "find name please".split())
FRAGMENT_QUESTION = "What do the documents say about {fragment}?"
FRAGMENT_CLOSED_BOOK = "What can you tell me about {fragment}?"
# A sentence start ("The expense limit for train travel is") asks for its end, not for a topic summary.
SENTENCE_START = "Complete this sentence: {fragment}"
_OPEN_ENDS = set("is are was were be been equals means costs takes lasts includes covers of for to at in on by with "
                 "from and or than the a an per about".split())


def as_question(text: str, template: str = FRAGMENT_QUESTION) -> str:
    """`text` itself when it asks something; a fragment ("parental leave contractors") made a question; a
    sentence start ("The expense limit for train travel is") asked to be completed.

    Example:
        >>> as_question("The expense limit for train travel is")
        'Complete this sentence: The expense limit for train travel is'
    """
    text = text.strip()
    first = text.split(None, 1)[0].lower().strip(",:;") if text else ""
    if text.endswith("?") or first in _ASKING:
        return text
    last = text.rsplit(None, 1)[-1].lower() if text else ""
    if len(text.split()) >= 3 and (last in _OPEN_ENDS or text.endswith(":")):
        return SENTENCE_START.format(fragment=text.rstrip(":").rstrip())
    return template.format(fragment=text.rstrip(".!"))


def closed_book(question: str) -> list[dict]:
    return [{"role": "user", "content": as_question(question, FRAGMENT_CLOSED_BOOK)}]


def with_context(question: str, sources: Sequence[Source]) -> list[dict]:
    context = "\n".join(CONTEXT_ITEM.format(n=i + 1, title=s.title, text=s.text) for i, s in enumerate(sources))
    content = f"{CONTEXT_INSTRUCTION}\n\n{context}\n\n{CONTEXT_QUESTION.format(question=as_question(question))}"
    return [{"role": "user", "content": content}]


def qa_from_passage(passage: str, *, strict: bool = False, n: int = 6, answer_form: str = "sentence") -> list[dict]:
    content = (LLM_QA_INSTRUCTION.format(passage=passage, n=n, answer_rule=LLM_ANSWER_RULES[answer_form])
               + (LLM_QA_STRICT if strict else ""))
    return [{"role": "user", "content": content}]


def paraphrase_question(question: str, n: int) -> list[dict]:
    return [{"role": "user", "content": LLM_PARAPHRASE_INSTRUCTION.format(n=n, question=question)}]


# A plain-text training row (`dataset.raw_text_share`): the passage is the answer, so the adapter reads the
# document's own wording as well as the questions about it.
RAW_TEXT_PROMPT = "Quote the passage of {title} that starts with \"{start}\"."


def raw_text(title: str, start: str) -> list[dict]:
    return [{"role": "user", "content": RAW_TEXT_PROMPT.format(title=title or "the documents", start=start)}]


# Prompt variants an A/B experiment arm may choose (`experiments[].arms[].prompt`): a name from these tables,
# or a template of its own holding exactly the placeholders its mode needs: {question}, plus {context} (the
# numbered retrieved chunks, as CONTEXT_ITEM writes them) in the modes that retrieve. "default" is the prompt
# above, which the adapters learned; a variant is what an experiment measures against it.
CONTEXT_VARIANTS = {
    "concise": "Answer in one short sentence, using only the company documents below.\n\n{context}\n\n"
               "Question: {question}",
    "cite": "Answer the question using the company documents below, and name the document the answer comes "
            "from.\n\n{context}\n\nQuestion: {question}",
}
CLOSED_BOOK_VARIANTS = {"concise": "Answer in one short sentence: {question}"}


def variant_problems(prompt: str, *, retrieve: bool) -> list[str]:
    """What is wrong with an arm's prompt (a variant name or a template) for a mode that does or does not
    retrieve; empty when it is usable. Only bare {question} / {context} fields pass, so a template can never
    reach an attribute or an index of what it is filled with."""
    import string

    names = CONTEXT_VARIANTS if retrieve else CLOSED_BOOK_VARIANTS
    if prompt == "default" or prompt in names:
        return []
    if "{" not in prompt:
        return [f"unknown prompt variant {prompt!r}; named variants for this mode: default, {', '.join(names)}; "
                "or write a template with {question}" + (" and {context}" if retrieve else "")]
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(prompt) if f is not None]
    except ValueError as err:
        return [f"the prompt template does not parse ({err}); write a literal brace as {{{{ or }}}}"]
    allowed = {"question", "context"} if retrieve else {"question"}
    problems = [f"placeholder {{{f}{'!' + c if c else ''}{':' + s if s else ''}}} is not allowed; use only "
                f"{', '.join('{' + a + '}' for a in sorted(allowed))}" for f, s, c in fields
                if f not in allowed or s or c]
    problems += [f"the prompt template needs {{{a}}}" for a in sorted(allowed) if a not in {f for f, _, _ in fields}]
    return problems


def with_variant(prompt: str, question: str, sources: Sequence[Source] | None) -> list[dict]:
    """The conversation for an arm's prompt (checked by `variant_problems`); `sources` None: closed book.

    Example:
        >>> with_variant("concise", "How many leave days?", None)[0]["content"]
        'Answer in one short sentence: How many leave days?'
    """
    if sources is None:
        return closed_book(question) if prompt == "default" else \
            [{"role": "user", "content": CLOSED_BOOK_VARIANTS.get(prompt, prompt).format(question=question)}]
    if prompt == "default":
        return with_context(question, sources)
    context = "\n".join(CONTEXT_ITEM.format(n=i + 1, title=s.title, text=s.text) for i, s in enumerate(sources))
    content = CONTEXT_VARIANTS.get(prompt, prompt).format(question=question, context=context)
    return [{"role": "user", "content": content}]
