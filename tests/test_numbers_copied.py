"""Repetition control never changes a number, a date, an amount or a code, in any shipped decoding setting.

The bundled tokenizer writes each digit as its own token, so "121,000" holds the 4-gram ",000" that
"98,000" already said; a token-level no-repeat rule turned it into "121,001". These tests use a tiny
byte-level BPE tokenizer that splits digits the same way, built in-process.
"""

from __future__ import annotations

import itertools
import random
import re

import pytest
import torch
from conftest import project_config
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerFast

import framework.serving.generator as generator_module
from framework import prompts
from framework.project import Project, load_config_dict
from framework.records import Principal, Source
from framework.serving.decoding import SentenceBudget, decoding_controls, token_kinds
from framework.serving.generator import HFGenerator
from framework.text import sentence_ends

# Every shipped decoding option, at its default and around it: no_repeat_ngram_size (default 4; 0 is off),
# repetition_penalty (default 1.0: off), max_sentences (default 3; None: no sentence budget). The default run
# checks each option's values against the defaults of the others; `-m slow` checks every combination.
NO_REPEAT = (0, 2, 3, 4, 5)
PENALTY = (1.0, 1.1, 1.5)
SENTENCES = (None, 1, 3)
DEFAULT = (4, 1.0, 3)


def settings(full: bool) -> list[tuple[int, float, int | None]]:
    """(no_repeat_ngram_size, repetition_penalty, max_sentences): all combinations, or one option varied at a time
    (plus the two repetition controls together, the pair most likely to interact)."""
    if full:
        return list(itertools.product(NO_REPEAT, PENALTY, SENTENCES))
    n, p, k = DEFAULT
    varied = [(x, p, k) for x in NO_REPEAT] + [(n, x, k) for x in PENALTY] + [(n, p, x) for x in SENTENCES]
    return list(dict.fromkeys(varied + [(0, 1.5, None), (2, 1.5, 1)]))


FULL = [pytest.param(False, id="each-option"), pytest.param(True, id="every-combination", marks=pytest.mark.slow)]
# A number, amount, date, version, phone number, extension or IBAN-like code: what must be copied exactly.
VALUE = re.compile(r"[A-Z]{2}\d{2}(?: \d{4})+(?: \d{1,4})?|v?\d[\d,.:/+-]*\d|\d")

LABELS = ("senior band", "staff band", "travel budget", "training budget", "helpdesk", "reception", "release",
          "payroll account", "deadline", "meal limit", "hotel cap", "version")


def _values(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return f"{rng.randint(1, 999)},{rng.choice([0, 0, rng.randint(0, 999)]):03d} euros"
    if kind == 1:
        return f"${rng.randint(1, 999)},{rng.choice([0, 500, rng.randint(0, 999)]):03d}"
    if kind == 2:
        return f"{rng.randint(2019, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == 3:
        return f"v{rng.randint(0, 12)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
    if kind == 4:
        return f"ext. {rng.randint(1000, 9999)}"
    if kind == 5:
        return f"+49 30 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
    return f"DE{rng.randint(10, 99)} " + " ".join(f"{rng.randint(0, 9999):04d}" for _ in range(4)) + \
        f" {rng.randint(0, 99):02d}"


def number_document(rng: random.Random, items: int = 6) -> str:
    """A table of amounts, dates, versions, extensions and codes, as sentences (many share ",000")."""
    return " ".join(f"The {rng.choice(LABELS)} is {_values(rng)} to {_values(rng)}." for _ in range(items))


def build_digit_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE that writes each digit as its own token, like the bundled SmolLM2 tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    rng = random.Random(0)
    text = [number_document(rng) for _ in range(200)] + [
        prompts.CONTEXT_INSTRUCTION, "Question: What do the documents say about the budget? user assistant",
        "Answer the question using the company documents below. What can you tell me about it?"]
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    return fast


@pytest.fixture(autouse=True)
def one_thread():
    """A model of a few thousand weights runs fastest on one thread (on a busy machine, by far)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digit_tokenizer() -> PreTrainedTokenizerFast:
    return build_digit_tokenizer()


@pytest.fixture(scope="module")
def digit_model(tmp_path_factory, digit_tokenizer):
    """A tiny Llama over the digit-splitting tokenizer, saved where HFGenerator and Project load models from."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = digit_tokenizer
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    folder = tmp_path_factory.mktemp("digit-llama")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _value_positions(tok, answer: str) -> tuple[list[int], list[int]]:
    """The answer's token ids, and the positions of the tokens that make up its numbers and codes."""
    enc = tok(answer, add_special_tokens=False, return_offsets_mapping=True)
    spans = [m.span() for m in VALUE.finditer(answer)]
    inside = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if any(a < e and b > s for s, e in spans)]
    return enc["input_ids"], inside


@pytest.mark.parametrize("full", FULL)
def test_no_shipped_setting_ever_changes_the_next_token_of_a_number_or_code(digit_tokenizer, full):
    """Property: for random number-dense documents, an answer that copies them (or says them from memory, or
    says them twice) keeps the score of every token of every number and code under every decoding setting."""
    tok = digit_tokenizer
    rng = random.Random(21)
    checked = 0
    for case in range(24 if full else 3):
        document = number_document(rng)
        sentences = re.findall(r"[^.]*?\d[^.]*\.(?:\s|$)|[^.]+\.", document)
        copied = document  # rag: the answer copies the context
        twice = f"{document} To repeat: {' '.join(rng.sample(sentences, 3))}"  # says some values again
        prompt_with = tok(f"Documents: {document}\nQuestion: what are the figures?", add_special_tokens=False)
        prompt_without = tok("Question: what are the figures?", add_special_tokens=False)  # prompt_only
        for prompt, answer in [(prompt_with, copied), (prompt_with, twice), (prompt_without, copied)]:
            p = prompt["input_ids"]
            ids, inside = _value_positions(tok, answer)
            for n, penalty in dict.fromkeys((n, p) for n, p, _ in settings(full)):
                processors, _ = decoding_controls(prompt_length=len(p), repetition_penalty=penalty,
                                                  no_repeat_ngram_size=n, max_sentences=None, tokenizer=tok)
                if not processors:
                    continue
                for i in inside:
                    scores = torch.randn(1, len(tok), generator=torch.Generator().manual_seed(case * 1000 + i))
                    out = processors(torch.tensor([p + ids[:i]]), scores.clone())
                    assert out[0, ids[i]] == scores[0, ids[i]], (
                        f"no_repeat_ngram_size={n} repetition_penalty={penalty} changed the token "
                        f"{tok.decode([ids[i]])!r} after {tok.decode(ids[max(0, i - 12):i])!r}")
                    checked += 1
    assert checked > (20_000 if full else 1_000)


def test_word_loops_are_still_stopped_and_a_prompt_ngram_is_free_as_often_as_the_prompt_holds_it(digit_tokenizer):
    tok = digit_tokenizer
    prompt = tok("The travel budget is 500 euros. The travel budget is 900 euros.", add_special_tokens=False)["input_ids"]
    p = len(prompt)
    processors, _ = decoding_controls(prompt_length=p, repetition_penalty=1.0, no_repeat_ngram_size=3,
                                      max_sentences=None, tokenizer=tok)

    def banned(answer: str, word: str) -> bool:
        ids = tok(answer, add_special_tokens=False)["input_ids"]
        target = tok(word, add_special_tokens=False)["input_ids"][0]
        return processors(torch.tensor([prompt + ids]), torch.zeros(1, len(tok)))[0, target] == -float("inf")

    assert not banned("The travel budget is 500 euros. The travel", " budget")  # the prompt says it twice
    assert banned("The travel budget. The travel budget. The travel", " budget")  # a third time is a loop
    assert not banned("It is 500 euros or 900", " euros")  # never right after a number
    kinds = token_kinds(tok)
    word = {t: bool(kinds.word[tok.convert_tokens_to_ids(t)]) for t in ("Ġbudget", "0", ",", "Ġ")}
    assert word == {"Ġbudget": True, "0": False, ",": False, "Ġ": False}


# What a model might say from memory (prompt_only): numbers that share ",000", no word n-gram said twice.
CLOSED_BOOK = ("Senior engineers earn 98,000 to 121,000 euros, staff engineers get 121,500 to 150,000 euros and "
               "principals 150,000 to 190,000 euros. Call ext. 4417 or ext. 4410 before 2024-03-15 or 2024-04-15. "
               "Pay to DE89 3704 0044 0532 0130 00 from v2.10.0 on.")


class _Script(LogitsProcessor):
    """Makes the model say `target`: a scripted word token scores 100 (a ban still removes it), a scripted
    token of a number or code 1.05, every other token 1.0. So a penalty (scores divided) or a ban on a number's
    token lets another win, and the answer shows any change a control makes to a number."""

    def __init__(self, tokenizer, target, prompt_length: int) -> None:
        self.tokenizer, self.target, self.rows = tokenizer, target, None
        self.eos, self.prompt_length = tokenizer.eos_token_id, prompt_length

    def _row(self, prompt_ids) -> tuple[list[int], list[float]]:
        """`target` may depend on the prompt: a callable of its text."""
        prompt = self.tokenizer.decode(prompt_ids)
        ids, inside = _value_positions(self.tokenizer, self.target(prompt) if callable(self.target) else self.target)
        return ids, [0.05 if i in set(inside) else 99.0 for i in range(len(ids))]

    def __call__(self, input_ids, scores):
        if self.rows is None:
            self.rows = [self._row(row) for row in input_ids[:, :self.prompt_length]]
        step = input_ids.shape[1] - self.prompt_length
        scores[:] = 1.0
        for r, (ids, margin) in enumerate(self.rows):
            token, extra = (ids[step], margin[step]) if step < len(ids) else (self.eos, 99.0)
            scores[r, token] += extra
        return scores


@pytest.fixture
def scripted(monkeypatch, digit_tokenizer):
    """Generation in which the model (whatever its weights) says `target`; the decoding controls act after it."""
    state = {"target": ""}

    def controls(*, prompt_length, **kwargs):
        processors, stopping = decoding_controls(prompt_length=prompt_length, **kwargs)
        script = _Script(digit_tokenizer, state["target"], prompt_length)
        return LogitsProcessorList([script, *processors]), stopping

    monkeypatch.setattr(generator_module, "decoding_controls", controls)
    return state


def _expected(target: str, max_sentences: int | None) -> str:
    ends = sentence_ends(target)
    return target[:ends[max_sentences - 1]] if max_sentences and len(ends) >= max_sentences else target


@pytest.mark.parametrize("full", FULL)
def test_generated_answers_copy_every_number_exactly_in_every_shipped_setting(digit_model, digit_tokenizer, scripted,
                                                                             full):
    """Through HFGenerator (processors, stopping, trimming): an answer copying its context (rag) and one
    saying numbers from memory (prompt_only), in one batch, come out exactly as the model says them."""
    document = number_document(random.Random(7), items=4 if full else 2)
    sources = [Source(chunk_id="c1", doc_id="d", title="Figures", uri="u", score=1.0, text=document)]
    scripted["target"] = lambda prompt: document if prompts.CONTEXT_INSTRUCTION in prompt else CLOSED_BOOK
    conversations = [prompts.with_context("what are the figures?", sources), prompts.closed_book("salary bands")]
    budget = max(len(digit_tokenizer(t)["input_ids"]) for t in (document, CLOSED_BOOK)) + 4
    gen = HFGenerator(digit_model)
    for n, penalty, sentences in settings(full):
        gen.no_repeat_ngram_size, gen.repetition_penalty, gen.max_sentences = n, penalty, sentences
        answers = gen.complete(conversations, max_new_tokens=budget)
        for answer, target in zip(answers, (document, CLOSED_BOOK)):
            assert answer.text == _expected(target, sentences), (n, penalty, sentences, answer.text)


def test_every_mode_and_answer_style_copies_numbers_exactly(tmp_path, digit_model, scripted):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    rng = random.Random(11)
    documents = [number_document(rng, items=3) for _ in range(3)]
    for i, text in enumerate(documents):
        (corpus / f"figures{i}.md").write_text(f"# Figures {i}\n\n{text}\n")
    values = {v for text in documents + [CLOSED_BOOK] for v in VALUE.findall(text)}
    for style, (n, penalty) in itertools.product(("generative", "extractive"), ((4, 1.0), (0, 1.5))):
        cfg = project_config(tmp_path / style, corpus, digit_model, index={"chunk_size": 400}, runtime={"threads": 1},
                             generator={"answer_style": style, "no_repeat_ngram_size": n, "repetition_penalty": penalty,
                                        "max_new_tokens": 400})
        project = Project(load_config_dict(cfg), show_progress=False)
        if project.index.count() == 0:
            project.ingest()
        for mode in ("rag", "prompt_only", "auto"):
            scripted["target"] = lambda prompt: documents[0] if prompts.CONTEXT_INSTRUCTION in prompt else CLOSED_BOOK
            answer = project.ask_many(["what are the figures?"], mode=mode, principal=Principal())[0]
            found = VALUE.findall(answer.text)
            assert found and set(found) <= values, (style, n, penalty, mode, answer.text)
            if answer.generated_tokens:
                target = documents[0] if answer.sources else CLOSED_BOOK
                assert answer.text == _expected(target, project.config.generator.max_sentences)


def test_a_small_budget_never_returns_a_bare_list_marker(digit_model, digit_tokenizer, scripted):
    """A list answer cut by `max_sentences` or by the token budget ends after an item, never on "2." or "1."."""
    scripted["target"] = "1. The senior band is 98,000 euros\n2. The staff band is 121,000 euros\n3. The"
    gen = HFGenerator(digit_model, max_sentences=1)
    conversation = prompts.closed_book("bands")
    assert gen.complete([conversation], max_new_tokens=60)[0].text == "1. The senior band is 98,000 euros"
    short = gen.complete([conversation], max_new_tokens=2)[0]  # the budget ends right after "1."
    assert short.truncated and short.text == ""
    stop = SentenceBudget(digit_tokenizer, prompt_length=0, max_sentences=1)
    assert stop(torch.tensor([digit_tokenizer("1. The", add_special_tokens=False)["input_ids"]]), None).tolist() == [False]


NUMBER_DOCUMENTS = [
    "Salary bands. Senior engineers earn 98,000 to 121,000 euros per year. Staff engineers earn 121,000 to "
    "150,000 euros per year.",
    "Office phone extensions: reception 4100, IT helpdesk 4417, HR 4410, facilities 4400.",
    "Release history: version 2.10.0 shipped on 2024-03-15, version 2.10.1 on 2024-04-02, version 2.11.0 on "
    "2024-06-30.",
    "Payments go to IBAN DE89 3704 0044 0532 0130 00; the travel budget is 10,000 EUR and the training budget "
    "is 100,000 EUR.",
]
NUMBER_QUESTIONS = ["What do senior and staff engineers earn?", "What is the salary range of a senior engineer?",
                    "What are the phone extensions?", "When did the versions ship?",
                    "Where do payments go and what are the budgets?", "What is the training budget?"]


@pytest.mark.slow
def test_the_bundled_model_copies_every_number_exactly():
    """The trial's case on the real model: "98,000 to 121,000 euros" came back as "121,001" (and "150,001",
    "200,010") under the default no_repeat_ngram_size 4. Every number a rag answer says must be in its documents."""
    from framework.runtime.models import resolve_generator

    sources = [Source(chunk_id=f"c{i}", doc_id=f"d{i}", title=f"Doc {i}", uri="u", score=1.0, text=t)
               for i, t in enumerate(NUMBER_DOCUMENTS)]
    corpus = " ".join(NUMBER_DOCUMENTS)
    conversations = [prompts.with_context(q, sources) for q in NUMBER_QUESTIONS]
    gen = HFGenerator(resolve_generator("bundled"), batch_size=len(conversations))
    said = 0
    for n, penalty, sentences in [DEFAULT, (2, 1.0, 3), (4, 1.5, None)]:
        gen.no_repeat_ngram_size, gen.repetition_penalty, gen.max_sentences = n, penalty, sentences
        for question, answer in zip(NUMBER_QUESTIONS, gen.complete(conversations, max_new_tokens=96)):
            numbers = VALUE.findall(answer.text)
            said += len(numbers)
            assert all(x in corpus for x in numbers), (n, penalty, sentences, question, answer.text)
    assert said > 0
