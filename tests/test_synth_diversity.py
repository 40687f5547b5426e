"""Synthetic data that teaches facts: several phrasings per fact, short answers, no recitation rows."""

import json
import re
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import local_http_server, make_chunk, project_config, send_chat_reply

from framework.config import DatasetConfig
from framework.dataset.entities import entity_families
from framework.dataset.filters import filter_pairs, repeats_question, wh_fragment
from framework.dataset.generators import extractive_pairs, fact_families, select_rows
from framework.project import Project, load_config_dict
from framework.records import QAPair

# Three registers the generator must handle without rules fit to any of them.
POLICY = ("# Travel policy\nEmployees must book flights through the Tripwise portal at least 21 days before departure. "
          "The daily meal allowance abroad is 60 EUR. Hotel costs above 180 EUR per night need approval from the "
          "finance director. The travel desk is led by Amira Haddad. Amira Haddad approves every trip to Japan. "
          "Expense reports are due on 5 March for the first quarter.")
PRODUCT = ("Orbit Sync stores 500 GB of files for every team. Orbit Sync was released on 2 June 2021 by Kestrel Labs. "
           "Kestrel Labs supports Orbit Sync in 12 languages. The mobile app is called Satellite. "
           "Backups run every Sunday at 02:00 in the Frankfurt data centre.")
ARTICLE = ("The Varda Bridge crosses the river Lune at Holmsby. The bridge was opened in 1897 by Queen Estrid. "
           "Queen Estrid ordered the bridge after the flood of 1881. The Varda Bridge is 412 metres long. "
           "Its central arch spans 96 metres over the shipping channel.")
SPAN_KINDS = ("number", "amount", "date", "year", "time", "day")


@pytest.mark.parametrize("text", [POLICY, PRODUCT, ARTICLE])
def test_every_fact_with_a_clear_clause_gets_five_phrasings_and_a_short_answer(text):
    families = [f for f in fact_families(text, title="Guide", answer_form="short")
                if f[0].kind.split(":")[0] in SPAN_KINDS]
    assert len(families) >= 4
    rich = 0
    for fam in families:
        questions = {p.question.lower() for p in fam}
        assert len(questions) == len(fam)  # distinct
        forms = {p.kind.split(":")[1] for p in fam}
        rich += len(questions) >= 5
        if {"fronted", "subject"} <= forms:  # the sentence has a clear subject and verb: all the forms are there
            assert len(questions) >= 5 and len({p.answer for p in fam}) >= 3
        echo = next(p for p in fam if p.kind.endswith(":echo"))
        assert echo.answer.rstrip(".") in text and len(echo.answer.split()) <= 4  # a short span, copied
        assert all(p.parent == fam[0].qid for p in fam[1:]) and fam[0].parent is None
    assert rich >= len(families) // 2


@pytest.mark.parametrize("text", [POLICY, PRODUCT, ARTICLE])
def test_sentence_answers_state_the_fact_in_a_sentence_of_the_text(text):
    """The default answer form: every phrasing of a fact is answered by its source sentence (a reordered
    question by the sentence reordered the same way), so the fact is said whole, in the text's words."""
    sentences = {s.strip().rstrip(".") for s in re.split(r"(?<=\.)\s", text.split("\n")[-1])}
    short = fact_families(text, title="Guide", answer_form="short")
    full = fact_families(text, title="Guide")
    assert [[p.question for p in f] for f in full] == [[p.question for p in f] for f in short]
    for fam in (f for f in full if not f[0].kind.startswith("entity")):
        for p in fam:
            if p.kind.endswith(":reordered"):
                assert sorted(p.answer.rstrip(".").lower().replace(",", "").split()) == sorted(
                    p.fact.lower().replace(",", "").split())
            else:
                assert p.answer.rstrip(".") in sentences and p.answer.rstrip(".") == p.fact


@pytest.mark.parametrize("text", [POLICY, PRODUCT, ARTICLE])
def test_no_answer_repeats_its_question_and_no_wh_fragments(text):
    pairs = extractive_pairs(text, title="Guide")
    assert not [p for p in pairs if repeats_question(p.question, p.answer)]
    assert not [p for p in pairs if wh_fragment(p.question, p.answer)]
    assert not [p for p in pairs if re.search(r"\bwhat\.", p.question + p.answer)]
    assert all(p.question.endswith("?") or p.kind.startswith("entity") for p in pairs)


def test_a_fact_is_asked_from_the_other_side_and_in_reverse():
    questions = {p.kind.split(":")[1]: (p.question, p.answer) for f in fact_families(ARTICLE, answer_form="short") for p in f
                 if p.kind.startswith("year") and "1897" in p.fact}
    assert questions["echo"] == ("The bridge was opened in which year by Queen Estrid?", "1897.")
    assert questions["fronted"][0] == "In which year was the bridge opened by Queen Estrid?"
    assert "subject" not in questions  # "Which bridge ...?" "The bridge." would answer with the question's words
    assert questions["reverse"][0] == "What is said about 1897 in the documents?"
    led = {p.kind.split(":")[1]: (p.question, p.answer) for f in fact_families(POLICY, answer_form="short") for p in f
           if p.fact.startswith("The travel desk") and p.kind.startswith("name")}
    assert led["subject"] == ("Which desk is led by Amira Haddad?", "The travel desk.")
    assert led["fronted"] == ("By whom is the travel desk led?", "Amira Haddad.")


def test_entity_rows_gather_what_the_passage_says_about_one_name():
    fam = entity_families(ARTICLE)[0]
    assert "Queen Estrid" in fam[0].question or "Varda Bridge" in fam[0].question
    name = "Queen Estrid" if "Queen Estrid" in fam[0].question else "Varda Bridge"
    said = [s for s in re.split(r"(?<=\.) ", ARTICLE) if name in s]
    assert {p.kind for p in fam} == {"entity:profile", "entity:profile_reverse"}
    assert all(all(s in p.answer for s in said) for p in fam)


def test_the_per_chunk_cap_reaches_every_fact_before_a_second_phrasing():
    families = fact_families(POLICY)
    chosen = select_rows(families, len(families) + 2)
    assert {p.fact for p in chosen} == {f[0].fact for f in families}
    assert extractive_pairs(POLICY, cap=5) == select_rows(families, 5)


def test_filters_count_repeats_and_fragments():
    chunk = make_chunk("Employees must submit receipts within 30 days. The tool is called Coinbasket.")
    pairs = [(chunk, QAPair("Must employees submit receipts within 30 days?",
                            "Employees must submit receipts within 30 days.", "rule", "f1")),
             (chunk, QAPair("The tool is called what.", "The tool is called Coinbasket.", "entity", "f2")),
             (chunk, QAPair("Employees must submit receipts within how many days?", "30 days.", "number", "f1"))]
    kept, dropped = filter_pairs(pairs, DatasetConfig())
    assert [p.answer for _, p in kept] == ["30 days."]
    assert dropped["answer_repeats_question"] == 1 and dropped["wh_fragment"] == 1


def test_the_card_counts_every_row_kind_and_raw_text_rows(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in (("travel.md", POLICY), ("orbit.md", PRODUCT), ("bridge.md", ARTICLE)):
        (docs / name).write_text(text)
    cfg = project_config(tmp_path, docs, dataset={"raw_text_share": 1.0, "eval_fraction": 0.1, "min_examples": 5,
                                                  "heldout_documents_fraction": 0.0})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    card = project.synthesize()
    rows = [json.loads(x) for x in (project.dataset_dir() / "train.jsonl").read_text().splitlines()]
    by_kind = card.split["train_by_kind"]
    assert sum(sum(k.values()) for k in by_kind.values()) == len(rows) == card.split["train"]
    counted = Counter((r["mode"], r["generator"].split(":", 1)[-1]) for r in rows)
    assert counted == Counter({(m, k): n for m, kinds in by_kind.items() for k, n in kinds.items()})
    raw = [r for r in rows if r["generator"] == "raw_text"]
    assert raw and by_kind["finetuned"]["raw_text"] == len(raw)
    assert all(r["messages"][-1]["content"] in (POLICY, PRODUCT, ARTICLE) or "Quote the passage" in
               r["messages"][0]["content"] for r in raw)
    assert {"answer_repeats_question", "wh_fragment"} <= set(card.dropped)


class _Teacher(BaseHTTPRequestHandler):
    """An OpenAI-compatible teacher that asks one fact three ways, repeats a question once and leaves a blank."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.prompts.append(body["messages"][-1]["content"])
        reply = ("Question: How much is the daily meal allowance abroad?\nAnswer: 60 EUR.\n"
                 "Question: What is paid at 60 EUR a day when travelling abroad?\nAnswer: The daily meal allowance.\n"
                 "Question: Abroad, what is the meal allowance per day?\nAnswer: 60 EUR.\n"
                 "Question: Is the daily meal allowance abroad 60 EUR?\nAnswer: The daily meal allowance abroad is 60 EUR.\n"
                 "Question: Who leads the travel desk?\nAnswer: Amira Haddad.\n"
                 "Question: Flights are booked through what?\nAnswer: what.")
        send_chat_reply(self, reply)


@pytest.fixture
def teacher_server():
    with local_http_server(_Teacher, prompts=[]) as server:
        yield server


def test_the_teacher_is_asked_for_varied_forms_and_short_answers(tmp_path, teacher_server):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.md").write_text(POLICY)
    teacher = {"base_url": f"http://127.0.0.1:{teacher_server.server_address[1]}/v1", "api_model": "fake",
               "http_retries": 0}
    cfg = project_config(tmp_path, docs, dataset={"generator": "llm", "teacher": teacher, "paraphrases": 0,
                                                  "answer_form": "short",
                                                  "min_examples": 1, "eval_fraction": 0.0, "round_trip": False,
                                                  "heldout_documents_fraction": 0.0})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    card = project.synthesize()
    prompt = teacher_server.prompts[0]
    for asked in ("other side", "short fact", "another order", "who/what/when/where", "Never answer a question"):
        assert asked in prompt
    rows = [json.loads(x) for x in (project.dataset_dir() / "train.jsonl").read_text().splitlines()]
    answers = Counter(r["answer"] for r in rows if r["mode"] == "finetuned")
    assert answers["60 EUR."] == 2 and answers["Amira Haddad."] == 1 and answers["The daily meal allowance."] == 1
    meal = [r for r in rows if r["answer"] == "60 EUR." and r["mode"] == "finetuned"]
    assert len({r["fact_id"] for r in meal}) == 1 and sum(r["parent_id"] is None for r in meal) == 1
    assert card.dropped["answer_repeats_question"] >= 1 and card.dropped["wh_fragment"] >= 1
    assert not any(r["answer"].startswith("The daily meal allowance abroad is") for r in rows)


def test_the_teacher_is_asked_for_the_configured_answer_form():
    from framework import prompts

    sentence = prompts.qa_from_passage("Leave is 28 days.")[0]["content"]
    short = prompts.qa_from_passage("Leave is 28 days.", answer_form="short")[0]["content"]
    assert "one complete sentence" in sentence and "short fact itself" not in sentence
    assert "short fact itself" in short and "one complete sentence" not in short
