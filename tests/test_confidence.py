"""Calibrated retrieval confidence, auto mode reading it, and abstention."""

import pytest
from conftest import project_config

from framework.project import Project, load_config_dict
from framework.retrieval.confidence import Calibration
from framework.serving.router import ABSTAIN_TEXT

ANSWERABLE = [("What is the meal limit per day?", "policies/expenses.txt"),
              ("How many days of annual leave does every employee receive?", "handbook.md"),
              ("What is the VPN client called?", "policies/security.html"),
              ("Within how many days must receipts be submitted?", "policies/expenses.txt"),
              ("How long must every password be?", "policies/security.html"),
              ("When is the office open on working days?", "handbook.md")]
UNANSWERABLE = ["Which volcano erupted near the glacier?", "Who won the chess olympiad?",
                "What colour are flamingo feathers?", "How deep is the trench under the ocean?"]


def _rows():
    return ([{"question": q, "answer": "x", "document": d} for q, d in ANSWERABLE]
            + [{"question": q, "answer": "x", "document": []} for q in UNANSWERABLE])


def test_fit_needs_hits_and_misses():
    with pytest.raises(ValueError, match="both hits and misses"):
        Calibration.fit([0.1, 0.2, 0.3, 0.4, 0.5], [1, 1, 1, 1, 1], k=3)
    cal = Calibration.fit([0.1, 0.15, 0.2, 0.5, 0.55, 0.6], [0, 0, 1, 0, 1, 1], k=3)
    assert cal.slope > 0 and 0 < cal.confidence(0.35) < 1 and 0 <= cal.brier < 0.25


def test_calibrated_confidence_separates_answerable_questions_and_abstains(tmp_path, corpus, tiny_model):
    cfg = project_config(tmp_path, corpus, model=tiny_model, index={"top_k": 2, "retrieval": "dense"})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    fit = project.calibrate(_rows())
    assert fit["questions"] == 10 and project.workspace.calibration(project.config.index.collection).is_file()

    calibrated = Project(load_config_dict({**cfg, "router": {**cfg["router"], "abstain_below_confidence": 0.5}}),
                         show_progress=False)
    known = calibrated.ask_many([q for q, _ in ANSWERABLE], mode="rag")
    unknown = calibrated.ask_many(UNANSWERABLE, mode="rag")
    mean = lambda answers: sum(a.confidence for a in answers) / len(answers)  # noqa: E731
    assert mean(known) > mean(unknown)
    # The hashing embedder is crude, so not every question falls on its side; the rule holds for each.
    for a in known + unknown:
        assert a.abstained == (a.confidence < 0.5)
        assert (a.text == ABSTAIN_TEXT) == a.abstained
        assert ("abstained: confidence" in a.reason) == a.abstained
    assert not known[0].abstained and unknown[0].abstained
    # auto reads the calibrated confidence, not the raw cosine.
    auto = calibrated.ask_many([ANSWERABLE[0][0], UNANSWERABLE[0]], mode="auto")
    assert [a.mode for a in auto] == ["rag", "prompt_only"]
    assert all("retrieval confidence" in a.reason for a in auto)


def test_a_calibration_for_another_retrieval_setting_is_ignored(tmp_path, corpus):
    cfg = project_config(tmp_path, corpus, index={"retrieval": "dense"})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    project.calibrate(_rows())
    other = Project(load_config_dict({**cfg, "index": {**cfg["index"], "retrieval": "hybrid"}}), show_progress=False)
    assert project.calibration is not None and other.calibration is None


def test_scoring_as_a_user_who_reads_nothing_is_refused_not_zero(tmp_path, corpus):
    cfg = project_config(tmp_path, corpus)
    cfg["sources"][0] = {**cfg["sources"][0], "public": False, "acl": ["staff"]}
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    with pytest.raises(PermissionError, match="may read no chunk"):
        project.evaluate_retrieval(_rows())
    with pytest.raises(PermissionError, match="may read no chunk"):
        project.calibrate(_rows())
    from framework.records import Principal

    staff = Principal(user="kim", groups=("staff",))
    assert project.evaluate_retrieval(_rows(), principal=staff, ks=(2,))["hit@2"] > 0


def test_lexical_only_retrieval_can_still_be_scored(tmp_path, corpus):
    cfg = project_config(tmp_path, corpus, index={"retrieval": "lexical"})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    assert project.evaluate_retrieval(_rows(), ks=(2,))["hit@2"] > 0
