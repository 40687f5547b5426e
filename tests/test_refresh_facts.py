"""A refresh judges a changed fact by its value: the candidate must state the new value and not the old one.

An adapter that still answered "28 days" where the document now says "29 days" kept a token F1 of 0.93 and
passed the gate's changed-fact check; and a question that itself contains the new value gives it away."""

from framework.config import DEFAULT_REFRESH_GATE
from framework.evaluation.results import EvaluationResult, ModeResult, PairedDifference
from framework.evaluation.scoring import aggregate, paired, question_scores, split_kinds
from framework.records import Answer
from framework.refresh.examples import changed_value, evaluation_rows, states_value
from framework.refresh.gate import FACT_CHECK, check_refresh_gate, parse_refresh_gate

OLD = "Every employee receives 28 days of annual leave per year."
NEW = "Every employee receives 29 days of annual leave per year."
QUESTION = "Every employee receives how many days of annual leave per year?"
UNCHANGED = [("The meal limit is 45 EUR per day.", "What is the meal limit per day?"),
             ("The VPN client is called Tunnelwise.", "What is the VPN client called?")]


def test_a_changed_value_is_the_words_that_differ():
    assert changed_value(NEW, OLD) == (["28"], ["29"])
    assert changed_value(OLD, OLD) is None  # nothing changed
    assert changed_value("The travel desk is open on Mondays.", OLD) is None  # another statement, not a value
    assert states_value("They get 29 days.", ["29"]) and not states_value("They get 290 days.", ["29"])


def test_changed_questions_carry_old_and_new_value_and_none_gives_the_new_value_away():
    old_rows = [{"doc_id": "leave", "chunk_hash": "h-old", "question": QUESTION, "answer": OLD, "mode": "finetuned"},
                {"doc_id": "leave", "chunk_hash": "h-old", "question": "Do employees receive 28 days of leave?",
                 "answer": OLD, "mode": "finetuned"}]
    new_rows = [{"doc_id": "leave", "chunk_hash": "h-new", "question": QUESTION, "answer": NEW, "mode": "finetuned"},
                {"doc_id": "leave", "chunk_hash": "h-new", "question": "Do employees receive 29 days of leave?",
                 "answer": NEW, "mode": "finetuned"}]
    rows = evaluation_rows(new_rows, [], {"leave\nh-new"}, changed=5, unchanged=0, seed=0, old=old_rows)
    assert [(r["question"], r["old_value"], r["new_value"]) for r in rows] == [(QUESTION, "28", "29")]


def _row(label: str, texts: list[str], rows: list[dict]) -> ModeResult:
    answers = tuple(Answer(text=t, question=r["question"], mode="finetuned", prompt="") for t, r in zip(texts, rows))
    scores = question_scores(answers, rows)
    kinds = {k: aggregate([scores[i] for i in idx], resamples=200) for k, idx in split_kinds(rows).items()}
    return ModeResult(label=label, mode="finetuned", metrics=aggregate(scores, resamples=200), by_split_kind=kinds,
                      answers=answers, per_question=tuple(scores))


def _evaluate(candidate: list[str], serving: list[str], rows: list[dict]) -> EvaluationResult:
    cand, serv = _row("finetuned@t@v0002", candidate, rows), _row("finetuned@t@v0001", serving, rows)
    pairs = [PairedDifference(cand.label, serv.label, paired(cand.per_question, serv.per_question, resamples=200))]
    pairs += [PairedDifference(cand.label, serv.label, paired([cand.per_question[i] for i in idx],
                                                              [serv.per_question[i] for i in idx], resamples=200),
                               split_kind=k) for k, idx in split_kinds(rows).items()]
    return EvaluationResult(results=(cand, serv), questions=len(rows), baseline=serv.label, comparisons=tuple(pairs))


def _gate(candidate: list[str], serving: list[str], rows: list[dict]):
    conditions = parse_refresh_gate(list(DEFAULT_REFRESH_GATE), kinds=["changed", "unchanged"])
    return check_refresh_gate(_evaluate(candidate, serving, rows), conditions, candidate="finetuned@t@v0002",
                              serving="finetuned@t@v0001", rows=rows)


ROWS = [{"question": QUESTION, "answer": NEW, "split_kind": "changed", "old_value": "28", "new_value": "29"}] + \
    [{"question": q, "answer": a, "split_kind": "unchanged"} for a, q in UNCHANGED]
KNOWN = [a for a, _ in UNCHANGED]


def test_the_gate_rejects_a_candidate_that_still_states_the_old_value():
    stale = _gate([OLD, *KNOWN], [OLD, *KNOWN], ROWS)
    by_condition = {c.condition: c for c in stale.checks}
    assert by_condition["candidate@changed.token_f1 >= serving@changed.token_f1"].passed  # F1 cannot tell
    fact = by_condition[FACT_CHECK]
    assert not stale.passed and not fact.passed and "states the old value" in fact.reason
    assert "new value on 0 and the old on 1" in fact.reason


def test_the_gate_passes_a_candidate_that_states_the_new_value():
    updated = _gate([NEW, *KNOWN], [OLD, *KNOWN], ROWS)
    assert updated.passed, [c.reason for c in updated.checks]
    both = _gate(["It was 28 days, now 29 days.", *KNOWN], [OLD, *KNOWN], ROWS)  # the old one still said
    assert not both.passed
    # A serving version that never knew the fact (no old value stated): not stating it is no regression.
    neither = _gate(["Ask the team lead.", *KNOWN], ["Ask the team lead.", *KNOWN], ROWS)
    assert [c.passed for c in neither.checks if c.condition == FACT_CHECK] == [True]
    assert len(_gate([NEW, *KNOWN], [OLD, *KNOWN], [{**r, "new_value": ""} for r in ROWS]).checks) == 2  # no facts
