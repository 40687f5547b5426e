"""Every per-answer metric against a case computed by hand, and the scores a run derives from answers."""

import pytest

from framework.evaluation.gold import gold_rank, gold_sources, matches
from framework.evaluation.metrics import (answer_recall, answer_recall_new_words, groundedness, repetition_rate,
                                          semantic_similarity, token_f1)
from framework.evaluation.scoring import aggregate, question_scores
from framework.records import Answer, Source
from framework.retrieval.embedder import HashingEmbedder


def test_token_f1_by_hand():
    # answer words: you get 28 days (4); reference: employees get 28 days of leave (6); common: get 28 days (3)
    # precision 3/4, recall 3/6 -> F1 = 2 * 0.75 * 0.5 / 1.25 = 0.6
    assert token_f1("You get 28 days", "Employees get 28 days of leave") == pytest.approx(0.6)


def test_answer_recall_new_words_by_hand():
    question = "How many days of leave do employees get?"
    reference = "Employees get 28 days of paid leave."
    # reference content words: employees get 28 days paid leave; minus the question's words: {28, paid}
    assert answer_recall_new_words("Employees get days of leave.", reference, question) == 0.0
    assert answer_recall_new_words("28 days.", reference, question) == 0.5
    assert answer_recall_new_words("28 paid days", reference, question) == 1.0
    # echoing the question scores on recall, not on the new words
    assert answer_recall(question, reference) == pytest.approx(4 / 6)
    assert answer_recall_new_words("anything", "Days of leave.", question) is None  # nothing new to find


def test_groundedness_by_hand():
    context = ["The meal limit is 45 EUR per day.", "Receipts are submitted within 30 days."]
    # content words of the answer: meal limit 60 eur per day receipt submit -> stems
    # meal limit 60 eur per day receipt submit; all but 60 in the context (stems: receipts -> receipt,
    # submitted -> submit): 7/8
    assert groundedness("The meal limit is 60 EUR per day; submit the receipt.", context) == pytest.approx(7 / 8)
    assert groundedness("It is 45 EUR.", context) == 1.0
    assert groundedness("Tunnelwise.", context) == 0.0
    assert groundedness("It is what it is.", context) is None  # stopwords only: nothing claimed
    assert groundedness("45 EUR", []) == 0.0


def test_repetition_rate_by_hand():
    assert repetition_rate("one two three") == 0.0  # no 4-gram
    assert repetition_rate("a b c d e f") == 0.0
    # 4-grams of "a b c d a b c d a b": abcd bcda cdab dabc abcd bcda cdab -> 7, 3 repeat an earlier one
    assert repetition_rate("a b c d a b c d a b") == pytest.approx(3 / 7)
    assert repetition_rate("Go home. Go home. Go home.") == pytest.approx(1 / 3)  # go home go home x3: 3 grams, 1 repeat


def test_semantic_similarity_is_the_cosine_of_the_embeddings():
    emb = HashingEmbedder(dim=64)
    sims = semantic_similarity(["28 days of leave", "", "meal limit"], ["28 days of leave", "x", "vpn client"],
                               embedder=emb)
    assert sims[0] == pytest.approx(1.0) and sims[1] == 0.0
    a, b = emb.embed(["meal limit", "vpn client"])
    assert sims[2] == pytest.approx(float(a @ b), abs=1e-6)


def _src(doc_id, uri, page=None, text=""):
    return Source(chunk_id=doc_id, doc_id=doc_id, title="", uri=uri, score=0.5, text=text, page=page)


def test_gold_sources_match_ids_names_uris_and_pages():
    pdf = _src("hr:plans/plan.pdf", "file:///srv/hr/plans/plan.pdf#page=3", page=3)
    for gold in ("hr:plans/plan.pdf", "plan.pdf", "plans/plan.pdf", "file:///srv/hr/plans/plan.pdf",
                 "file:///srv/hr/plans/plan.pdf#page=3", "plan.pdf#page=3"):
        assert matches(pdf, gold), gold
    for gold in ("an.pdf", "lan.pdf", "plan.pdf#page=4", "file:///srv/hr/plan.pdf", "file:///srv/hr/plans/plan.pdf#page=2"):
        assert not matches(pdf, gold), gold
    web = _src("wiki:Runbooks", "https://wiki.example.com/runbooks")
    assert matches(web, "https://wiki.example.com/runbooks") and not matches(web, "https://wiki.example.com/run")
    assert gold_rank([web, pdf], ["plan.pdf"]) == 2 and gold_rank([web], ["plan.pdf"]) is None
    assert gold_sources({"document": "a.md"}) == ["a.md"] and gold_sources({"sources": ["a", "b"]}) == ["a", "b"]
    assert gold_sources({"question": "q"}) == []


def _answer(text, mode="rag", sources=(), **kw):
    return Answer(text=text, question="q", mode=mode, prompt="p", sources=tuple(sources), **kw)


def test_question_scores_and_aggregates_by_hand():
    hit2 = [_src("d:other.md", "file:///other.md", text="Nothing here."),
            _src("d:leave.md", "file:///leave.md", text="Employees get 28 days of leave.")]
    rows = [{"question": "How many days?", "answer": "28 days", "document": "leave.md"},
            {"question": "Meal limit?", "answer": "45 EUR", "document": "meal.md"},
            {"question": "Who?", "answer": "Ada"}]
    answers = [_answer("28 days", sources=hit2, latency_s=1.0, generated_tokens=4),
               _answer("The documents don't say.", sources=hit2, abstained=True, latency_s=1.0),
               _answer("Ada Ada", mode="finetuned", truncated=True, latency_s=2.0, generated_tokens=8)]
    scores = question_scores(answers, rows)
    assert [s["retrieval_rank"] for s in scores] == [2, None, None]
    assert [s["retrieval_hit"] for s in scores] == [1.0, 0.0, None]  # no gold, no retrieval: not scored
    assert [s["reciprocal_rank"] for s in scores] == [0.5, 0.0, None]
    assert [s["groundedness"] for s in scores] == [1.0, None, None]  # abstained and closed-book: n/a
    assert [s["semantic_similarity"] for s in scores] == [None] * 3  # no embedder given
    est = aggregate(scores, resamples=200)
    assert est["retrieval_hit"].value == 0.5 and est["retrieval_hit"].n == 2
    assert est["retrieval_mrr"].value == 0.25
    assert est["abstention_rate"].value == pytest.approx(1 / 3) and est["truncation_rate"].value == pytest.approx(1 / 3)
    assert est["groundedness"].value == 1.0 and est["groundedness"].n == 1
    assert est["tokens_per_s"].value == pytest.approx(12 / 4)  # 12 tokens over 4 seconds
    assert est["latency_p50_s"].value == 1.0 and est["latency_p95_s"].value == pytest.approx(1.9)
    assert est["semantic_similarity"].value is None
