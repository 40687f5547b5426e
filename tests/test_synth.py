import json
from collections import Counter

import pytest
from conftest import make_chunk, project_config

from framework.config import DatasetConfig
from framework.dataset.filters import DatasetTooSmallError, filter_pairs
from framework.dataset.generators import QAPair, extractive_pairs, parse_llm_reply
from framework.dataset.split import split_pairs
from framework.project import Project, load_config_dict
from framework.text import sentences, words


def test_extractive_questions_come_with_copied_answers():
    text = ("## Expenses\nThe meal limit is 45 EUR per day. Employees must submit receipts within 30 days.\n"
            "The expense tool is called Coinbasket. The all-hands meeting is held every Monday.")
    pairs = extractive_pairs(text)
    questions = {p.question for p in pairs}
    assert "What is the expense tool called?" in questions
    assert "What must employees do?" in questions
    assert "The meal limit is how much per day?" in questions
    assert "Employees must submit receipts within how many days?" in questions
    assert any("on which day" in q for q in questions)
    # every answer is copied from the chunk: short answers verbatim, sentences possibly with a clause moved
    assert all(p.answer.rstrip(".").lower() in text.lower() for p in pairs if len(p.answer.split()) <= 4)
    assert all(set(words(p.answer)) <= set(words(text)) for p in pairs)
    # a yes/no question restating the rule would be answered by its own words: not generated
    assert "Must employees submit receipts within 30 days?" not in questions


def test_sentences_skip_headings_and_split_bullets():
    assert sentences("# Title\n- The VPN is called Tunnelwise.\n- Passwords must be 16 characters long.") == [
        "The VPN is called Tunnelwise.", "Passwords must be 16 characters long."]


def test_filters_count_every_drop():
    chunk = make_chunk("The meal limit is 45 EUR per day.")
    pairs = [(chunk, QAPair("What is the meal limit?", "The meal limit is 45 EUR per day.", "d", "f1")),
             (chunk, QAPair("What is the meal limit?", "The meal limit is 45 EUR per day.", "d", "f1")),
             (chunk, QAPair("What is the meal limit ?!", "The meal limit is 45 EUR per day.", "d", "f1")),
             (chunk, QAPair("Why?", "The meal limit is 45 EUR per day.", "d", "f1")),
             (chunk, QAPair("What is the travel class?", "Trains are always first class.", "d", "f2"))]
    kept, dropped = filter_pairs(pairs, DatasetConfig())
    assert len(kept) == 1
    assert dropped == Counter(duplicate=2, too_short=1, unsupported_answer=1)


def test_split_holds_out_a_phrasing_and_keeps_the_fact_trained():
    chunk = make_chunk("x")
    pairs = [(chunk, QAPair(f"q{f}-{i}", "a", "k", f"fact{f}")) for f in range(20) for i in range(3)]
    train, evals = split_pairs(pairs, 0.25, seed=1)
    assert len(evals) == 5 and len(train) == 55
    train_q = {p.question for _, p in train}
    assert {kind for _, _, kind in evals} == {"paraphrase"}
    for _, p, _ in evals:
        assert p.question not in train_q
        assert any(t.fact == p.fact for _, t in train)


def test_parse_llm_reply():
    assert parse_llm_reply("Question: How many days?\nAnswer: 28 days.\nextra") == ("How many days?", "28 days.")
    assert parse_llm_reply("I cannot help with that") is None


def _project(tmp_path, corpus, **sections):
    return Project(load_config_dict(project_config(tmp_path, corpus, **sections)), show_progress=False)


def test_synthesize_writes_chat_jsonl_with_lineage(tmp_path, corpus):
    project = _project(tmp_path, corpus, dataset={"raft": {"fraction": 1.0, "context_chunks": 2}})
    project.ingest()
    card = project.synthesize()
    folder = project.dataset_dir()
    train = [json.loads(x) for x in (folder / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(x) for x in (folder / "eval.jsonl").read_text().splitlines()]
    assert card.split["train"] == len(train) and card.split["eval"] == len(evals) > 0
    chunk_ids = project.index.ids()
    for row in train + evals:
        assert [m["role"] for m in row["messages"]][-1] == "assistant"
        assert row["chunk_id"] in chunk_ids and row["doc_hash"] and row["doc_id"].startswith("docs:")
    combined = [r for r in train if r["mode"] == "combined"]
    assert combined and all("Question:" in r["messages"][0]["content"] for r in combined)
    assert {r["question"] for r in evals}.isdisjoint({r["question"] for r in train})
    assert json.loads((folder / "card.json").read_text())["hash"] == card.hash


def test_audience_keeps_restricted_documents_out(tmp_path, corpus):
    restricted = tmp_path / "restricted"
    restricted.mkdir()
    (restricted / "salaries.md").write_text("The CEO salary is 250000 EUR per year. " * 3)
    sources = [{"name": "docs", "type": "files", "path": str(corpus), "public": True},
               {"name": "hr", "type": "files", "path": str(restricted), "acl": ["hr"]}]
    project = _project(tmp_path, corpus, sources=sources, dataset={"audience": ["hr", "sales"]})
    project.ingest()
    project.synthesize()
    text = "".join(p.read_text() for p in project.dataset_dir().iterdir())  # rows, card and generation cache
    assert "salary" not in text and "hr:salaries.md" not in text and "docs:handbook.md" in text


def test_thin_dataset_is_refused_loudly(tmp_path):
    docs = tmp_path / "d"
    docs.mkdir()
    (docs / "a.md").write_text("Hello there, this is a short note without facts in it at all.")
    project = _project(tmp_path, docs)
    project.ingest()
    with pytest.raises(DatasetTooSmallError, match="only 0 training examples left"):
        project.synthesize()


class _ScriptedGenerator:
    """Stands in for a teacher model whose replies we know: the reply for a prompt is the
    first script entry whose key the prompt contains; a stricter retry prompt gets its own entry."""

    def __init__(self, script):
        self.script = script
        self.prompts = []

    def generate(self, conversations, *, adapter=None, max_new_tokens=64):
        self.prompts.extend(c[0]["content"] for c in conversations)
        return [next((r for k, r in self.script if k in c[0]["content"]), "no idea") for c in conversations]


def test_llm_pairs_parse_good_replies_retry_and_count_bad_ones():
    from framework.dataset.generators import llm_pairs

    gen = _ScriptedGenerator([("must start with", "Question: Is travel second class?\nAnswer: Train travel is "
                               "second class."),
                              ("meal limit", "Question: What is the meal limit?\nAnswer: 45 EUR per day.")])
    texts = ["The meal limit is 45 EUR per day.", "Train travel is second class.", "Nothing here at all."]
    pairs, stats = llm_pairs(gen, texts, attempts=2)
    assert pairs[0][0].question == "What is the meal limit?" and pairs[0][0].answer == "45 EUR per day."
    assert pairs[1][0].answer == "Train travel is second class."  # parsed on the stricter second try
    assert pairs[2] == [] or pairs[2][0].question == "Is travel second class?"
    assert stats["parse_retries"] == 2 and len(gen.prompts) == 5
    pairs, stats = llm_pairs(gen, texts, attempts=1)
    assert stats["unparseable_reply"] == 2 and pairs[1] == [] and pairs[2] == []


def test_llm_generator_with_a_real_model_counts_unparseable_replies(tmp_path, corpus, tiny_model):
    project = _project(tmp_path, corpus, generator={"model": str(tiny_model), "max_new_tokens": 8},
                       dataset={"generator": "llm"})
    project.ingest()
    with pytest.raises(DatasetTooSmallError, match="unparseable_reply"):
        project.synthesize()


def test_split_holds_out_whole_facts_when_none_has_two_phrasings():
    chunk = make_chunk("x")
    pairs = [(chunk, QAPair(f"q{f}", "a", "llm", f"fact{f}")) for f in range(20)]
    train, evals = split_pairs(pairs, 0.2, seed=0)
    assert len(evals) == 4 and len(train) == 16
    assert {p.fact for _, p, _ in evals}.isdisjoint({p.fact for _, p in train})
    assert {kind for _, _, kind in evals} == {"heldout_fact"}


def test_extractive_covers_definitions_rules_numbers_dates_and_entities():
    text = ("Paid Time Off (PTO) accrues at 1.5 days per month for every employee.\n"
            "Balance billing means a provider bills you for the difference in cost.\n"
            "The open enrollment period starts on November 1, 2024 for all staff.\n"
            "Employees can enroll in Northwind Health Plus during open enrollment.\n"
            "The wellness program was launched in 2019 by the benefits team.")
    kinds = {p.kind.split(":")[0]: p.question for p in extractive_pairs(text) if p.kind.endswith(":echo")}
    assert kinds["acronym"] == "What does PTO stand for?" and kinds["definition"] == "What does balance billing mean?"
    assert {q for q in (p.question for p in extractive_pairs(text))} >= {
        "What does PTO stand for?", "What does balance billing mean?",
        "The open enrollment period starts on what date for all staff?",
        "Employees can enroll in what during open enrollment?",
        "The wellness program was launched in which year by the benefits team?"}
    assert "number" in kinds and extractive_pairs(text) == extractive_pairs(text)  # deterministic


def test_pdf_lines_wrapped_at_the_page_width_are_joined():
    text = ("Contoso Electronics is a leader in the aerospace industry, providing advanced electronic\n"
            "components for both commercial and military aircraft.\nOur Mission\n- Employees must wear badges.")
    assert sentences(text) == ["Contoso Electronics is a leader in the aerospace industry, providing advanced "
                               "electronic components for both commercial and military aircraft.",
                               "Employees must wear badges."]


def test_template_paraphrases_are_deterministic_and_point_at_their_parent():
    from framework.dataset.paraphrase import parse_paraphrases, template_paraphrases

    parent = QAPair("How many days of leave do employees get?", "28 days.", "number", "Leave is 28 days.")
    variants = template_paraphrases(parent, 3, title="Handbook")
    assert [v.question for v in variants] == [
        "What number of days of leave do employees get?",
        "According to Handbook, how many days of leave do employees get?",
        "How many days of leave do employees get, according to the company documents?"]
    assert all(v.parent == parent.qid and v.answer == parent.answer and v.fact == parent.fact for v in variants)
    assert template_paraphrases(parent, 3, title="Handbook") == variants
    reply = "Sure:\n1. What is the leave allowance?\n2) **How much leave is there?**\nHow many days of leave do employees get?"
    assert parse_paraphrases(reply, parent.question, 5) == ["What is the leave allowance?", "How much leave is there?"]


def test_llm_reply_parsing_tolerates_formats():
    from framework.dataset.generators import parse_llm_pairs

    assert parse_llm_pairs("**Question:** What is X?\n**Answer:** X is Y.") == [("What is X?", "X is Y.")]
    assert parse_llm_pairs("1. Q: What is X?\nA: Y.\n2. Q: Who is Z?\nA: W.") == [("What is X?", "Y."), ("Who is Z?", "W.")]
    assert parse_llm_pairs("Question: ...\nAnswer: ...") == []
    assert parse_llm_pairs("Question: What is X?") == []
    assert parse_llm_pairs("Sure.\nWhat is the meal limit per day?\nThe meal limit is 45 EUR.") == [
        ("What is the meal limit per day?", "The meal limit is 45 EUR.")]
    assert parse_llm_pairs("Is it? No.") == []


def test_a_question_without_answer_gets_the_best_matching_chunk_sentence():
    from framework.dataset.generators import llm_pairs

    chunk = "Parking is free for staff. The meal limit is 45 EUR per day for every employee. Trains are second class."
    gen = _ScriptedGenerator([("meal limit", "What's the meal limit per day for an employee?")])
    pairs, stats = llm_pairs(gen, [chunk, "Nothing about food here, only the weather of the coast."], attempts=1)
    assert pairs[0][0].answer == "The meal limit is 45 EUR per day for every employee."
    assert pairs[0][0].kind == "extracted_answer" and stats["unparseable_reply"] == 1
