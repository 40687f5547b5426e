"""Answers that use their sources: decoding controls, sentence budgets, evidence, extractive style."""

import torch
from conftest import project_config
from transformers import AutoModelForCausalLM, AutoTokenizer, RepetitionPenaltyLogitsProcessor

from framework import prompts
from framework.evaluation.metrics import repetition_rate
from framework.project import Project, load_config_dict
from framework.records import Principal, Source
from framework.serving.decoding import (
    GeneratedNoRepeatNGram,
    SentenceBudget,
    cut_after_sentences,
    decoding_controls,
    strip_preamble,
    trim_unfinished,
)
from framework.serving.evidence import extractive_answer, supporting_evidence
from framework.serving.generator import HFGenerator
from framework.text import sentence_ends


def _ids(tok, text):
    return torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])


def test_a_rare_context_token_is_not_penalised_until_the_answer_uses_it(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    rare = tok.convert_tokens_to_ids("tuesday")
    prompt = _ids(tok, "the vpn client is called tuesday . what is the vpn client called ?")
    assert rare in prompt[0].tolist()
    processors, _ = decoding_controls(prompt_length=prompt.shape[1], repetition_penalty=2.0, no_repeat_ngram_size=0,
                                      max_sentences=None, tokenizer=tok)
    with torch.no_grad():
        logits = model(prompt).logits[:, -1, :]
    assert torch.equal(processors(prompt, logits.clone())[0, rare], logits[0, rare])  # copying it costs nothing
    everywhere = RepetitionPenaltyLogitsProcessor(2.0)(prompt, logits.clone())  # what transformers does by default
    assert everywhere[0, rare] != logits[0, rare]
    answered = torch.cat([prompt, torch.tensor([[rare]])], dim=1)  # once the answer says it, saying it again costs
    assert processors(answered, logits.clone())[0, rare] != logits[0, rare]
    # during generation too: the first step's scores are those of a run without any penalty
    run = dict(max_new_tokens=2, do_sample=False, output_scores=True, return_dict_in_generate=True,
               pad_token_id=tok.pad_token_id)
    plain = model.generate(prompt, **run).scores[0]
    controlled = model.generate(prompt, logits_processor=processors, **run).scores[0]
    assert torch.equal(plain, controlled)


def test_ngram_blocking_allows_copying_the_context_but_not_repeating_the_answer(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt = _ids(tok, "the meal limit is 45 eur per day")
    limit = tok.convert_tokens_to_ids("limit")
    scores = torch.zeros(1, len(tok))
    copying = torch.cat([prompt, _ids(tok, "the meal")], dim=1)  # "the meal limit" is in the prompt: allowed
    assert GeneratedNoRepeatNGram(3, prompt.shape[1])(copying, scores.clone())[0, limit] == 0
    repeating = torch.cat([prompt, _ids(tok, "the meal limit . the meal")], dim=1)  # the answer said it already
    assert GeneratedNoRepeatNGram(3, prompt.shape[1])(repeating, scores.clone())[0, limit] == float("-inf")


def test_answers_end_at_a_sentence_end():
    assert sentence_ends("It costs 12.50 EUR. Pay by card, e.g. Visa. Then") == [19, 43]
    assert cut_after_sentences("One fact. Two facts. Three", 1) == "One fact."
    assert trim_unfinished("The limit is 45 EUR per day. Employees must subm") == "The limit is 45 EUR per day."
    assert trim_unfinished("no sentence end at all") == "no sentence end at all"


def test_sentence_budget_stops_each_row_after_its_sentences(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    rows = torch.cat([_ids(tok, "what ? the limit is 45 . the"), _ids(tok, "what ? the limit is 45 eur .")])
    stop = SentenceBudget(tok, prompt_length=2, max_sentences=1)(rows, None)
    assert stop.tolist() == [True, False]  # a final "." may still be "12.50": only a "." followed by a space ends


def test_fragments_are_asked_as_questions():
    assert prompts.as_question("parental leave contractors") == "What do the documents say about parental leave contractors?"
    assert prompts.as_question("How many days?") == "How many days?"
    assert prompts.closed_book("expense tool")[0]["content"] == "What can you tell me about expense tool?"
    src = Source(chunk_id="c", doc_id="d", title="T", uri="u", score=1.0, text="x")
    assert "What do the documents say about meal limit?" in prompts.with_context("meal limit", [src])[0]["content"]


SOURCES = [
    Source(chunk_id="c1", doc_id="docs:expenses.txt", title="Expenses", uri="file:///expenses.txt", score=0.8,
           section="Meals", page=3, text="Expense policy.\n\nThe meal limit is 45 EUR per day. Employees must submit "
                                         "receipts within 30 days of the purchase."),
    Source(chunk_id="c2", doc_id="docs:travel.txt", title="Travel", uri="file:///travel.txt", score=0.5,
           text="Train travel is always second class. Business trips need approval from the team lead."),
]


def test_evidence_is_the_source_sentences_that_carry_the_answer():
    found = supporting_evidence("Receipts must be submitted within 30 days.", SOURCES, limit=2)
    assert found[0].text == "Employees must submit receipts within 30 days of the purchase."
    assert (found[0].uri, found[0].section, found[0].page, found[0].chunk_id) == ("file:///expenses.txt", "Meals", 3, "c1")
    assert all(a.score >= b.score for a, b in zip(found, found[1:])) and len(found) <= 2
    assert supporting_evidence("Nothing here matches.", SOURCES, limit=2) == ()


def test_a_sentence_two_overlapping_chunks_share_is_quoted_once():
    from framework.retrieval.embedder import HashingEmbedder

    overlap = Source(chunk_id="c3", doc_id="docs:expenses.txt", title="Expenses", uri="file:///expenses.txt", score=0.7,
                     text="Employees must submit receipts within 30 days of the purchase. Late receipts are refused.")
    text, evidence = extractive_answer("When are receipts due?", [SOURCES[0], overlap], embed=HashingEmbedder().embed,
                                       limit=2)
    assert len({e.text for e in evidence}) == len(evidence) == 2


def test_an_extractive_answer_does_not_quote_the_cut_off_start_of_a_sentence_it_already_quotes():
    from framework.retrieval.embedder import HashingEmbedder

    whole = "Receipts for travel must be submitted within 30 days of the trip to the finance team."
    cut = "must be submitted within 30 days of the trip to the finance team."  # where the next chunk starts
    first = Source(chunk_id="c1", doc_id="d", title="Travel", uri="file:///t.md", score=0.9,
                   text=f"{whole} Hotels are booked through the travel desk.")
    second = Source(chunk_id="c2", doc_id="d", title="Travel", uri="file:///t.md", score=0.8,
                    text=f"{cut} Trains are preferred under 500 km.")
    text, evidence = extractive_answer("When must travel receipts be submitted?", [first, second],
                                       embed=HashingEmbedder().embed, limit=2)
    assert whole in text and cut not in text.replace(whole, "") and len(evidence) == 2
    assert repetition_rate(text) == 0.0


def test_extractive_answer_quotes_the_closest_sentences_in_reading_order():
    from framework.retrieval.embedder import HashingEmbedder

    text, evidence = extractive_answer("When is the meal limit?", SOURCES, embed=HashingEmbedder().embed, limit=2)
    assert evidence[0].text == "The meal limit is 45 EUR per day."
    assert text == " ".join(e.text for e in evidence) and all(e.text in SOURCES[0].text + SOURCES[1].text
                                                               for e in evidence)


def test_answers_carry_evidence_and_the_extractive_style_answers_verbatim(tmp_path, corpus, tiny_model):
    cfg = project_config(tmp_path, corpus, tiny_model)
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    rag = project.ask("what is the meal limit ?", mode="rag")
    assert all(e.chunk_id in {s.chunk_id for s in rag.sources} for e in rag.evidence)
    assert rag.to_dict()["evidence"] == [e.__dict__ for e in rag.evidence]
    extractive = Project(load_config_dict({**cfg, "generator": {**cfg["generator"], "answer_style": "extractive"}}),
                         show_progress=False)
    answer = extractive.ask("what is the meal limit ?", mode="rag", groups=["staff"])
    assert answer.evidence and answer.text == " ".join(e.text for e in answer.evidence)
    assert answer.generated_tokens == 0 and all(e.text in "\n".join(s.text for s in answer.sources)
                                                for e in answer.evidence)
    closed = extractive.ask("what is the meal limit ?", mode="prompt_only")
    assert not closed.evidence and not closed.sources  # nothing to quote: the model answers
    assert extractive.ask_many(["meal limit"], mode="rag", principal=Principal())[0].evidence


def test_a_list_marker_is_not_a_sentence_and_no_answer_ends_on_one():
    listing = "Two bands:\n1. Senior engineers earn 98,000 EUR\n2. Staff engineers earn 121,000 EUR\n3."
    assert cut_after_sentences(listing, 1) == "Two bands:\n1. Senior engineers earn 98,000 EUR"
    assert cut_after_sentences("1. The limit is 45 EUR.\n2. Receipts are due in 30 days.\n3.", 2) == \
        "1. The limit is 45 EUR.\n2. Receipts are due in 30 days."
    assert trim_unfinished("1. Senior eng") == "1. Senior eng" and trim_unfinished("The bands are:\n1.") == "The bands are:"
    assert sentence_ends("1.") == [] and sentence_ends("Call ext. 4417 today. Then") == [21]


def test_an_answer_starts_with_its_content_not_with_where_it_comes_from(tiny_model):
    assert strip_preamble("The documents state that the expense limit for train travel is 200 EUR.") == \
        "The expense limit for train travel is 200 EUR."
    assert strip_preamble("According to the context, v2.10.1 shipped on 2024-04-02.") == "v2.10.1 shipped on 2024-04-02."
    assert strip_preamble("The answer to the question is: 121,000 euros.") == "121,000 euros."
    assert strip_preamble("The text says nothing about it.") == "The text says nothing about it."  # content
    gen = HFGenerator(tiny_model)
    ids = gen.tokenizer("the answer to the question is : the meal limit is 45 eur per day .", add_special_tokens=False)
    assert gen._finished(torch.tensor(ids["input_ids"]), max_new_tokens=64).text == "The meal limit is 45 eur per day ."
    assert prompts.as_question("The expense limit for train travel is") == \
        "Complete this sentence: The expense limit for train travel is"
    assert prompts.as_question("VPN client name") == "What do the documents say about VPN client name?"


def test_the_bundled_generator_quotes_by_default_and_any_other_generates():
    from framework.config import GeneratorConfig

    assert GeneratorConfig().answer_style == "extractive"  # measured: docs/guides/answers.md
    assert GeneratorConfig(model="/models/my-7b").answer_style == "generative"
    remote = GeneratorConfig(backend="openai", base_url="http://127.0.0.1:8000/v1", api_model="base")
    assert remote.answer_style == "generative"
    assert GeneratorConfig(answer_style="generative").answer_style == "generative"  # one setting away
    assert GeneratorConfig(model="/models/small", answer_style="extractive").answer_style == "extractive"
