"""The pieces of a refresh without a model: example choice, questions, the gate's view, state, plan, config."""

import pytest

from framework.adapters.manifest import AdapterManifest
from framework.adapters.registry import AdapterError, AdapterRef, AdapterRegistry
from framework.config import ConfigError, DatasetConfig
from framework.dataset.delta import current_keys, row_key
from framework.dataset.formatting import text_hash
from framework.dataset.pipeline import generation_fingerprint
from framework.dataset.store import write_version
from framework.evaluation.gate import GateError
from framework.evaluation.results import EvaluationResult, ModeResult, PairedDifference
from framework.evaluation.stats import Estimate
from framework.ingest.ledger import Ledger
from framework.project import load_config, load_config_dict
from framework.refresh.examples import evaluation_rows, row_identity, training_rows
from framework.refresh.gate import check_refresh_gate, parse_refresh_gate
from framework.refresh.plan import make_plan
from framework.refresh.run import serving_version
from framework.refresh.state import RefreshBusyError, RefreshState, load_state, refresh_lock, save_state

from conftest import make_chunk


def _row(doc, text, question, mode="finetuned", answer="a"):
    return {"doc_id": doc, "chunk_hash": text_hash(text), "question": question, "answer": answer, "mode": mode}


ROWS = [_row("d1", "new text", f"q{i}") for i in range(3)] + [_row("d2", "old text", f"u{i}") for i in range(10)] + \
    [{"doc_id": None, "chunk_hash": None, "question": "imported", "answer": "x", "mode": "finetuned"}]
NEW = {f"d1\n{text_hash('new text')}"}


LEARNED = {row_identity(r) for r in ROWS[3:]}  # what the serving version trained on


def test_training_takes_every_new_row_and_a_seeded_replay_share_of_the_rest():
    chosen, counts = training_rows(ROWS, learned=LEARNED, new=NEW, replay=0.5, seed=0)
    assert counts == {"new": 3, "replay": 6, "unchanged": 11}
    assert [r["question"] for r in chosen[:3]] == ["q0", "q1", "q2"] and len(chosen) == 9
    assert training_rows(ROWS, learned=LEARNED, new=NEW, replay=0.5, seed=0)[0] == chosen  # a resumed run: same rows
    assert training_rows(ROWS, learned=LEARNED, new=NEW, replay=0.0, seed=0)[1]["replay"] == 0
    assert len(training_rows(ROWS, learned=LEARNED, new=NEW, replay=1.0, seed=0)[0]) == len(ROWS)
    # A question of an unchanged chunk that was held out before (the split is drawn again) is new to the adapter.
    moved = training_rows(ROWS, learned=LEARNED - {row_identity(ROWS[5])}, new=NEW, replay=0.0, seed=0)[0]
    assert [r["question"] for r in moved] == ["q0", "q1", "q2", "u2"]
    # Without the old version's rows, every row of an unchanged chunk counts as learned.
    assert training_rows(ROWS, learned=None, new=NEW, replay=0.0, seed=0)[1]["new"] == 3


def test_questions_mark_changed_and_unchanged_facts_and_keep_a_file_s_kinds():
    evals = [_row("d1", "new text", "e-new"), _row("d2", "old text", "e-old")]
    train = ROWS + [_row("d1", "new text", "q0"), _row("d2", "old text", "u0", mode="combined")]
    extra = [{"question": "f", "answer": "g"}, {"question": "h", "answer": "i", "split_kind": "policy"}]
    rows = evaluation_rows(train, evals, NEW, changed=2, unchanged=3, seed=0, extra=extra)
    kinds = [r["split_kind"] for r in rows]
    assert kinds == ["changed", "unchanged", "changed", "changed", "unchanged", "unchanged", "unchanged",
                     "questions", "policy"]
    assert len({r["question"] for r in rows}) == len(rows)  # one row per question
    assert all(not r["question"].startswith("imported") for r in rows)


def _result(candidate_f1=0.5, serving_f1=0.4, kinds=("changed", "unchanged"), refused=None):
    est = (lambda v: Estimate(v, v - 0.1, v + 0.1, 20))
    rows = tuple(ModeResult(label=label, mode="finetuned", metrics={"token_f1": est(v)},
                            by_split_kind={k: {"token_f1": est(v)} for k in kinds}, refused=r)
                 for label, v, r in (("finetuned@t@v0002", candidate_f1, refused), ("finetuned@t@v0001", serving_f1,
                                                                                    None)))
    pairs = tuple(PairedDifference("finetuned@t@v0002", "finetuned@t@v0001", {"token_f1": est(candidate_f1 - serving_f1)},
                                   split_kind=k) for k in (None, *kinds))
    return EvaluationResult(results=rows, questions=40, baseline="finetuned@t@v0001", comparisons=pairs)


def _gate(result, *conditions):
    parsed = parse_refresh_gate(conditions, kinds=["changed", "unchanged"])
    return check_refresh_gate(result, parsed, candidate="finetuned@t@v0002", serving="finetuned@t@v0001")


def test_the_gate_reads_roles_and_split_kinds():
    gate = _gate(_result(), "candidate@changed.token_f1 >= serving@changed.token_f1",
                 "candidate@unchanged.token_f1.delta.high >= 0", "candidate.token_f1 > 0.6")
    assert [c.passed for c in gate.checks] == [True, True, False] and not gate.passed
    assert gate.checks[1].left == pytest.approx(0.2) and "is not > 0.6000" in gate.checks[2].reason


def test_a_kind_without_questions_is_not_checked_but_a_refused_candidate_fails():
    only_unchanged = _gate(_result(kinds=("unchanged",)), "candidate@changed.token_f1 >= serving@changed.token_f1")
    assert only_unchanged.passed and "not checked: no changed questions" in only_unchanged.checks[0].reason
    refused = _gate(_result(kinds=(), refused="outside its audience"), "candidate@changed.token_f1 >= 0")
    assert not refused.passed and "outside its audience" in refused.checks[0].reason


def test_gate_typos_fail_before_any_work_and_name_the_rows():
    with pytest.raises(GateError, match="no row 'candidat'.*candidate, serving, candidate@changed"):
        parse_refresh_gate(["candidat.token_f1 >= 0"], kinds=["changed"])
    with pytest.raises(GateError, match="names no metric"):
        parse_refresh_gate(["candidate.f1 >= 0"], kinds=[])


def test_state_round_trips_and_a_second_refresh_is_refused(tmp_path):
    state = RefreshState(id="x", fingerprint="f", serving="v0001", started_at="now", dataset_version="v0002")
    save_state(tmp_path, state.add_seconds(train=1.5).add_seconds(train=1.0))
    loaded = load_state(tmp_path)
    assert loaded.step == "synthesized" and loaded.seconds == {"train": 2.5} and load_state(tmp_path / "none") is None
    with refresh_lock(tmp_path):
        with pytest.raises(RefreshBusyError, match="another refresh is running"):
            with refresh_lock(tmp_path):
                pass


def _serving(tmp_path, documents, acl, audience=()):
    """A served version whose dataset version saw one chunk of docs:a.md, and a ledger with docs:a.md."""
    chunk = make_chunk("Every employee receives 28 days of leave.", doc_id="docs:a.md", doc_hash="h1")
    key = next(iter(current_keys([chunk], DatasetConfig())))
    card = {"name": "t", "generation_fingerprint": generation_fingerprint(DatasetConfig(), "m")}
    write_version(tmp_path / "datasets" / "t", [], [], card, [{"key": key, "pairs": []}])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.begin("docs:a.md", "docs", "file:///a.md", [chunk.id])
    ledger.commit("docs:a.md", f"h1:{acl}|layout", [chunk.id])
    manifest = AdapterManifest(name="t", version="v0001", dataset={"name": "t", "version": "v0001"},
                               documents=documents, document_acl={"docs:a.md": "public"}, audience=audience)
    return chunk, AdapterRef("t", "v0001", tmp_path, manifest)


def _plan(tmp_path, chunks, serving, audience=()):
    return make_plan(chunks=chunks, cfg=DatasetConfig(audience=list(audience)), serving=serving, generator_model="m",
                     datasets_root=tmp_path / "datasets", ledger=tmp_path / "ledger.sqlite", warm_start=True,
                     settings="s")


def test_the_plan_finds_changed_chunks_and_refuses_a_warm_start_that_would_keep_revoked_text(tmp_path):
    chunk, serving = _serving(tmp_path, {"docs:a.md": "h1"}, "public")
    assert _plan(tmp_path, [chunk], serving).empty
    changed = make_chunk("Every employee receives 30 days of leave.", doc_id="docs:a.md", doc_hash="h2")
    plan = _plan(tmp_path, [changed], serving)
    assert (len(plan.delta.new), len(plan.delta.gone)) == (1, 1) and plan.warm_start
    assert row_key({"doc_id": "docs:a.md", "chunk_hash": text_hash(changed.text)}) in plan.delta.new
    assert plan.fingerprint != _plan(tmp_path, [changed, make_chunk("x", doc_id="docs:b.md")], serving).fingerprint
    chunk, serving = _serving(tmp_path / "acl", {"docs:a.md": "h1"}, "hr")  # its readers changed since training
    plan = _plan(tmp_path / "acl", [changed], serving)
    assert not plan.warm_start and "weights cannot unlearn" in plan.why_from_scratch
    gone = _plan(tmp_path, [], _serving(tmp_path / "del", {"docs:a.md": "h1"}, "public")[1])
    assert gone.delta.gone and not gone.warm_start and "deletions only" in gone.why_from_scratch


def test_refresh_needs_a_promoted_unpinned_version_it_can_replace(tmp_path):
    base = {"workspace": str(tmp_path), "finetune": {"adapter": "t"}, "router": {"adapter": "t"}}
    registry = AdapterRegistry(tmp_path / "adapters")
    with pytest.raises(AdapterError, match="finetune --promote"):
        serving_version(registry, load_config_dict(base))
    with pytest.raises(AdapterError, match="adapters.serve: promoted"):
        serving_version(registry, load_config_dict({**base, "adapters": {"serve": "latest"}}))
    with pytest.raises(AdapterError, match="remove the pin"):
        serving_version(registry, load_config_dict({**base, "router": {"adapter": "t@v0001"}}))


def test_the_refresh_section_is_checked_and_its_questions_file_is_relative_to_the_config(tmp_path):
    path = tmp_path / "ragtune.yaml"
    path.write_text("refresh:\n  replay: 0.3\n  questions: q/changed.jsonl\n")
    cfg = load_config(path)
    assert cfg.refresh.replay == 0.3 and cfg.refresh.questions == str(tmp_path / "q" / "changed.jsonl")
    assert cfg.refresh.gate == ["candidate@unchanged.token_f1.delta.high >= 0",
                                "candidate@changed.token_f1 >= serving@changed.token_f1"]
    with pytest.raises(ConfigError, match="refresh.replay.*\n.*refresh.epoch: unknown key"):
        load_config_dict({"refresh": {"replay": 2, "epoch": 1}})
