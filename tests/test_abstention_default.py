"""Abstention is on by default: a question whose retrieved context is unrelated (nothing the user may
read answers it) gets the documented abstention text, without generating; a related one is answered.
A real index with the default embedder (the bundled all-MiniLM) and the default hybrid retrieval and
router config; the tiny generator answers what is not declined."""

from __future__ import annotations

from conftest import project_config

from framework.config import RouterConfig
from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.retrieval.confidence import MEASURED_FLOORS, abstain_floor
from framework.serving.router import ABSTAIN_TEXT

RELATED = ["How many days of annual leave does every employee receive?", "When is the office open on working days?"]
UNRELATED = ["Which volcano erupted near the glacier?", "Who won the chess olympiad in Budapest?"]
MEAL = "What is the meal limit per day?"  # answered by policies/expenses.txt only


def test_the_documented_text_and_the_default_floor():
    assert ABSTAIN_TEXT == "The documents I can read don't say."
    assert RouterConfig().abstain_below == "auto" and RouterConfig().abstain_below_confidence is None


def test_by_default_unrelated_questions_abstain_and_related_ones_are_answered(tmp_path, corpus, tiny_model):
    cfg = project_config(tmp_path, corpus, model=tiny_model)
    cfg["index"] = {}  # the default embedder, retrieval and depth
    cfg["sources"][0] = {"name": "docs", "type": "files", "path": str(corpus),
                         "acl_paths": {"handbook.md": ["staff"], "policies/*": ["finance"]}}
    project = Project(load_config_dict(cfg), show_progress=False)
    assert project.router.abstain_floor == MEASURED_FLOORS["bundled"]
    project.ingest()
    staff, finance = Principal(user="ana", groups=("staff",)), Principal(user="bo", groups=("finance",))

    answers = project.ask_many(RELATED + UNRELATED + [MEAL], mode="rag", principal=staff)
    for a in answers[:2]:
        assert not a.abstained and a.text != ABSTAIN_TEXT and a.sources, (a.question, a.reason)
    # Unrelated to every document, and a question only a document staff may not read answers.
    for a in answers[2:]:
        assert a.abstained and a.text == ABSTAIN_TEXT and a.generated_tokens == 0, (a.question, a.reason)
        assert "abstained: top score" in a.reason and "< router.abstain_below" in a.reason
    [meal] = project.ask_many([MEAL], mode="rag", principal=finance)  # who may read the answer gets it
    assert not meal.abstained and any(s.doc_id == "docs:policies/expenses.txt" for s in meal.sources)
    nobody = project.ask_many([RELATED[0]], mode="rag", principal=Principal(user="cy", groups=("sales",)))
    assert nobody[0].abstained and nobody[0].sources == () and "top score none" in nobody[0].reason

    # The modes that retrieve nothing have nothing to judge: they answer (from the model) as before.
    closed = project.ask_many(UNRELATED[:1], mode="prompt_only", principal=staff)
    assert not closed[0].abstained and closed[0].confidence is None

    off = Project(load_config_dict({**cfg, "router": {**cfg["router"], "abstain_below": None}}),
                  show_progress=False, embedder=project.embedder)
    assert not any(a.abstained for a in off.ask_many(UNRELATED, mode="rag", principal=staff))


def test_an_embedder_without_a_measured_floor_gets_none_and_a_warning(caplog):
    assert abstain_floor("auto", "bundled", "hybrid") == MEASURED_FLOORS["bundled"]
    assert abstain_floor(0.42, "/models/e5-large", "hybrid") == 0.42 and abstain_floor(None, "bundled", "dense") is None
    with caplog.at_level("WARNING"):
        assert abstain_floor("auto", "hashing", "hybrid") is None  # measured: no floor separates
    assert caplog.text == ""
    with caplog.at_level("WARNING"):
        assert abstain_floor("auto", "/models/e5-large", "hybrid") is None
        assert abstain_floor("auto", "bundled", "lexical") is None
    assert "abstain_below_confidence" in caplog.text and "'/models/e5-large'" in caplog.text
