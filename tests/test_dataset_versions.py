"""Dataset versions, lineage, the split's two held-out kinds, incremental synth, and eval by kind."""

import json
import os

import pytest
from conftest import make_chunk, project_config

from framework.dataset.split import heldout_documents, split_pairs
from framework.project import Project, load_config_dict
from framework.records import QAPair

DOCS = {
    "leave.md": "Every employee receives 28 days of annual leave per year. Employees must submit leave requests "
                "10 days in advance. The leave tool is called Dayplanner.",
    "office.md": "The office is open from 08:00 to 20:00 on working days. The largest meeting room is called "
                 "Harbour Hall. Visitors must sign in at the front desk.",
    "expenses.md": "The meal limit is 45 EUR per day. Employees must submit receipts within 30 days. "
                   "The expense tool is called Coinbasket.",
    "security.md": "Every password must be at least 16 characters long. The VPN client is called Tunnelwise. "
                   "Laptops must be locked when unattended.",
    "travel.md": "Train travel is always second class. Business trips need approval from the team lead. "
                 "The travel desk is open on every Monday.",
}


def _corpus(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    return docs


def _project(tmp_path, docs, model=None, **dataset):
    cfg = project_config(tmp_path, docs, model, index={"embedder": "hashing", "chunk_size": 256},
                         dataset={"min_examples": 4, "heldout_documents_fraction": 0.2, "eval_fraction": 0.3,
                                  **dataset})
    return Project(load_config_dict(cfg), show_progress=False)


def _rows(folder, name):
    return [json.loads(x) for x in (folder / name).read_text().splitlines()]


def test_versions_latest_link_and_lineage(tmp_path):
    project = _project(tmp_path, _corpus(tmp_path))
    project.ingest()
    first = project.synthesize()
    second = project.synthesize()
    root = project.workspace.dataset_root("t")
    assert (first.version, second.version) == ("v0001", "v0002")
    assert os.readlink(root / "latest") == "v0002" and project.dataset_dir() == root / "v0002"
    assert (root / "v0001" / "train.jsonl").is_file() and second.hash == first.hash
    openai_rows = _rows(root / "v0002", "train.openai.jsonl")
    assert len(openai_rows) == second.split["train"] and all(set(r) == {"messages"} for r in openai_rows)
    assert all({m["role"] for m in r["messages"]} <= {"system", "user", "assistant"} and
               all(set(m) == {"role", "content"} for m in r["messages"]) for r in openai_rows)
    chunks = {r.id: r for r in project.index.rows()}
    for row in _rows(root / "v0002", "train.jsonl") + _rows(root / "v0002", "eval.jsonl"):
        chunk = chunks[row["chunk_id"]]
        assert row["doc_id"] == chunk.doc_id and row["doc_hash"] == chunk.doc_hash
        assert row["chunk_hash"] and row["generator"].startswith("extractive:") and row["question_id"]
        assert row["scores"]["support"] >= 0.8 and row["scores"]["round_trip_rank"] <= 5
        assert [m["role"] for m in row["messages"]][-2:] == ["user", "assistant"]


def test_split_holds_out_documents_and_paraphrases_without_leakage(tmp_path):
    project = _project(tmp_path, _corpus(tmp_path), raft={"fraction": 1.0})
    project.ingest()
    card = project.synthesize()
    train, evals = _rows(project.dataset_dir(), "train.jsonl"), _rows(project.dataset_dir(), "eval.jsonl")
    held = set(card.heldout_documents)
    assert held and {r["doc_id"] for r in evals if r["split_kind"] == "heldout_document"} == held
    assert not held & {r["doc_id"] for r in train}
    held_texts = [c.text for c in project.index.rows() if c.doc_id in held]
    contexts = " ".join(r["messages"][0]["content"] for r in train if r["mode"] == "combined")
    assert contexts and not [t for t in held_texts if t in contexts]  # not even as a RAFT distractor
    assert {r["question"] for r in evals}.isdisjoint(r["question"] for r in train)
    paraphrased = [r for r in evals if r["split_kind"] == "paraphrase"]
    assert paraphrased and card.split["eval_by_kind"] == {
        "heldout_document": len(evals) - len(paraphrased), "paraphrase": len(paraphrased)}
    trained = {(r["fact_id"]) for r in train}
    trained_ids = {r["question_id"] for r in train}
    for r in paraphrased:
        assert r["fact_id"] in trained and (r["parent_id"] is None or r["parent_id"] in trained_ids)


def test_heldout_documents_are_deterministic_and_sized_to_the_fraction():
    sizes = {f"d{i}": 1 + i % 7 for i in range(60)} | {"manual": 400}
    held = heldout_documents(sizes, 0.1, seed=0)
    share = sum(sizes[d] for d in held) / sum(sizes.values())
    assert "manual" not in held and 0.1 <= share <= 0.15
    assert held == heldout_documents(dict(reversed(sizes.items())), 0.1, seed=0)
    assert held != heldout_documents(sizes, 0.1, seed=1)
    assert heldout_documents({"a": 1, "b": 1}, 0.1, seed=0) == set()
    assert len(heldout_documents({"a": 5, "b": 5, "c": 5}, 0.9, seed=0)) == 2  # one always stays for training


def test_split_prefers_paraphrases_of_trained_questions():
    chunk = make_chunk("x", "d")
    pairs = []
    for f in range(10):
        parent = QAPair(f"q{f}", "a", "rule", f"fact{f}")
        pairs += [(chunk, parent), (chunk, QAPair(f"p{f}", "a", "paraphrase", f"fact{f}", parent.qid))]
    train, evals = split_pairs(pairs, 0.5, seed=3)
    assert len(evals) == 5 and all(p.parent and k == "paraphrase" for _, p, k in evals)
    assert {p.parent for _, p, _ in evals} <= {p.qid for _, p in train}


def test_load_dataset_reads_the_files(tmp_path):
    datasets = pytest.importorskip("datasets")
    project = _project(tmp_path, _corpus(tmp_path), raft={"fraction": 1.0})
    project.ingest()
    project.synthesize()
    folder = project.dataset_dir()
    loaded = datasets.load_dataset("json", data_files={"train": str(folder / "train.jsonl"),
                                                       "eval": str(folder / "eval.jsonl")},
                                   cache_dir=str(tmp_path / "hf-cache"))
    assert loaded["train"].num_rows == len(_rows(folder, "train.jsonl"))
    assert set(loaded["eval"].unique("split_kind")) == {"paraphrase", "heldout_document"}
    assert loaded["train"][0]["messages"][-1]["role"] == "assistant"


def test_incremental_synth_regenerates_only_changed_chunks(tmp_path):
    docs = _corpus(tmp_path)
    project = _project(tmp_path, docs)
    project.ingest()
    first = project.synthesize()
    assert first.incremental["chunks_generated"] == 5 and first.incremental["chunks_reused"] == 0
    (docs / "leave.md").write_text(DOCS["leave.md"].replace("28 days", "30 days"))
    (docs / "travel.md").unlink()
    (docs / "parking.md").write_text("The parking garage is called Deck Nine. Staff must display a permit.")
    project.ingest()
    card = project.synthesize()
    assert card.incremental == {"previous_version": "v0001", "chunks_reused": 3, "chunks_generated": 2,
                                   "chunks_failed": 0, "chunks_dropped": 2, "documents_dropped": 1}
    written = "".join(p.read_text() for p in project.dataset_dir().iterdir() if p.is_file())
    assert "docs:travel.md" not in written and "second class" not in written
    assert "30 days" in written and "28 days" not in written and "Deck Nine" in written
    cached = _rows(project.dataset_dir(), "generated.jsonl")
    assert {e["doc_id"] for e in cached} == {"docs:leave.md", "docs:office.md", "docs:expenses.md",
                                              "docs:security.md", "docs:parking.md"}
    changed = project.synthesize(), project.config
    project2 = Project(changed[1].model_copy(update={"dataset": changed[1].dataset.model_copy(
        update={"paraphrases": 1})}), show_progress=False)
    assert project2.synthesize().incremental["chunks_generated"] == 5  # new generator settings: all again


def test_round_trip_filter_drops_questions_that_miss_their_chunk(tmp_path):
    docs = _corpus(tmp_path)
    (docs / "dup.md").write_text(DOCS["leave.md"])  # same sentences in another document: half find the other
    on = _project(tmp_path, docs, heldout_documents_fraction=0.0, round_trip_top_k=1)
    on.ingest()
    card = on.synthesize()
    assert card.round_trip["checked"] == card.round_trip["passed"] + card.dropped["round_trip"]
    off = Project(on.config.model_copy(update={"dataset": on.config.dataset.model_copy(
        update={"round_trip": False, "name": "off"})}), show_progress=False)
    assert off.synthesize().dropped["round_trip"] == 0 and card.dropped["round_trip"] >= 0


def test_eval_reports_paraphrase_and_heldout_document_questions_apart(tmp_path, tiny_model):
    project = _project(tmp_path, _corpus(tmp_path), tiny_model)
    project.ingest()
    project.synthesize()
    result = project.evaluate(modes=["prompt_only", "rag"])
    for mode in ("prompt_only", "rag"):
        kinds = result.mode(mode).by_split_kind
        assert set(kinds) == {"paraphrase", "heldout_document"}
        assert sum(k["token_f1"].n for k in kinds.values()) == result.questions == len(result.mode(mode).answers)
    assert "## Metrics on `heldout_document` questions" in result.report.read_text()


def test_finetune_reads_the_latest_version(tmp_path, tiny_model):
    project = _project(tmp_path, _corpus(tmp_path), tiny_model)
    project.ingest()
    card = project.synthesize()
    manifest = project.finetune()
    assert manifest.dataset["hash"] == card.hash


def test_round_trip_ranks_are_reused_while_the_index_is_unchanged(tmp_path):
    docs = _corpus(tmp_path)
    project = _project(tmp_path, docs)
    project.ingest()
    first = project.synthesize()
    second = project.synthesize()
    assert first.round_trip["reused"] == 0 and second.round_trip["reused"] == second.round_trip["checked"]
    assert second.hash == first.hash
    (docs / "parking.md").write_text("The parking garage is called Deck Nine. Staff must display a permit.")
    project.ingest()
    assert project.synthesize().round_trip["reused"] == 0  # the index changed: every question searched again
