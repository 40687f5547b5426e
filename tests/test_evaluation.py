import pytest

from framework.evaluation.metrics import answer_recall, token_f1
from framework.evaluation.questions import load_questions


def test_token_f1_and_recall():
    assert token_f1("28 days", "28 days") == 1.0
    assert token_f1("no idea", "28 days") == 0.0
    assert 0 < token_f1("You get 28 days of leave", "Employees receive 28 days of annual leave.") < 1
    assert answer_recall("It is 45 EUR per day, I think.", "The meal limit is 45 EUR per day.") == pytest.approx(4 / 6)  # meal, limit missing


def test_numbers_keep_their_decimals():
    assert token_f1("0.30 EUR", "0.30 EUR") == 1.0
    assert token_f1("0 30 EUR", "0.30 EUR") < 1.0


def test_question_file_errors_name_the_line(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "a?", "answer": "b"}\n{"question": "c?"}\n')
    with pytest.raises(ValueError, match=r"q.jsonl:2: field 'answer' is missing or empty"):
        load_questions(f)
    f.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"q.jsonl:1: not valid JSON at column 2"):
        load_questions(f)


def test_gold_document_matches_whole_names_only():
    from framework.evaluation.gold import retrieval_metrics
    from framework.records import Source

    data = Source(chunk_id="c", doc_id="docs:data.md", title="", uri="file:///x/data.md", score=1.0, text="")
    assert retrieval_metrics([[data]], ["a.md"], ks=(1,))["hit@1"] == 0.0
    assert retrieval_metrics([[data]], ["data.md"], ks=(1,))["hit@1"] == 1.0


def test_question_file_must_be_a_file_and_gold_must_be_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a JSONL or CSV file"):
        load_questions(tmp_path)
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "a?", "answer": "b", "document": 5}\n')
    with pytest.raises(ValueError, match="q.jsonl:1: field 'document' must be a source"):
        load_questions(f)


def test_page_level_gold_needs_the_cited_page():
    from framework.evaluation.gold import retrieval_metrics
    from framework.records import Source

    p7 = Source(chunk_id="c", doc_id="hr:plan.pdf", title="", uri="file:///x/plan.pdf#page=7", score=1.0, text="",
                page=7)
    p8 = Source(chunk_id="d", doc_id="hr:plan.pdf", title="", uri="file:///x/plan.pdf#page=8", score=1.0, text="",
                page=8)
    assert retrieval_metrics([[p8, p7]], ["plan.pdf#page=7"], ks=(1, 2)) == {
        "questions": 1, "hit@1": 0.0, "hit@2": 1.0, "recall@1": 0.0, "recall@2": 1.0, "mrr": 0.5}
    # Two gold pages, one found: a hit, but half the recall.
    assert retrieval_metrics([[p8]], [["plan.pdf#page=7", "plan.pdf#page=8"]], ks=(1,))["recall@1"] == 0.5
    assert retrieval_metrics([[p8]], ["plan.pdf"], ks=(1,))["hit@1"] == 1.0


def test_a_chunk_running_over_pages_counts_for_each_of_them():
    from framework.evaluation.gold import retrieval_metrics
    from framework.records import Source

    p7_8 = Source(chunk_id="c", doc_id="hr:plan.pdf", title="", uri="file:///x/plan.pdf#page=7", score=1.0,
                  text="", page=7, page_end=8)
    hits = [retrieval_metrics([[p7_8]], [f"plan.pdf#page={n}"], ks=(1,))["hit@1"] for n in (6, 7, 8, 9)]
    assert hits == [0.0, 1.0, 1.0, 0.0]
