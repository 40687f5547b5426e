"""The held-out knowledge check: probes in new words, key-span scoring, the epoch kept, the manifest."""

import json

import pytest
from conftest import project_config
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from framework.project import Project, load_config_dict
from framework.training.knowledge import build_probes, question_file_probes, summarize
from framework.training.rewording import key_span, span_hit
from framework.training.selection import choose

ROWS = [
    {"doc_id": "hr:handbook.md", "fact_id": "f1", "mode": "finetuned",
     "question": "How many days of annual leave does every employee receive?",
     "answer": "Every employee receives 28 days of annual leave per year."},
    {"doc_id": "hr:handbook.md", "fact_id": "f1", "mode": "finetuned",
     "question": "What number of days of annual leave does every employee receive?", "answer": "28 days"},
    {"doc_id": "hr:handbook.md", "fact_id": "f2", "mode": "finetuned", "question": "What is the room called?",
     "answer": "The largest meeting room is called Harbour Hall."},
    {"doc_id": "fin:expenses.txt", "fact_id": "f3", "mode": "finetuned", "question": "What is the meal limit?",
     "answer": "The meal limit is 45 EUR per day."},
    {"doc_id": "fin:expenses.txt", "fact_id": "f3", "mode": "combined", "question": "What is the meal limit?",
     "answer": "The meal limit is 45 EUR per day."},
]


def test_probes_ask_trained_facts_in_new_words_and_spread_over_documents():
    probes = build_probes(ROWS, limit=10)
    assert {p["span"] for p in probes} == {"28", "Harbour Hall", "45"}
    trained = {r["question"].lower() for r in ROWS}
    for p in probes:
        assert p["question"].lower() not in trained and p["span"] not in p["question"]
        assert "____" in p["question"]
    assert build_probes(ROWS, limit=2)[0]["doc_id"] != build_probes(ROWS, limit=2)[1]["doc_id"]  # documents in turn
    bare = [{"doc_id": "d", "fact_id": "f", "question": "How many days?", "answer": "28 days"}]
    assert build_probes(bare, limit=5) == []  # a span answer alone leaves nothing to ask the fact by


def test_a_user_question_file_adds_probes_on_trained_documents(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"question": "What daily food budget applies on trips?", "answer": "45 EUR a day", "document": "expenses.txt"},
        {"question": "Who approves trips?", "answer": "the team lead", "document": "expenses.txt"},  # no key span
        {"question": "What is the Crumb plan's price?", "answer": "9 EUR per month", "document": "product.pdf"},
    ]))
    probes = question_file_probes(path, ["fin:expenses.txt", "hr:handbook.md"])
    assert probes == [{"doc_id": "fin:expenses.txt", "question": "What daily food budget applies on trips?",
                       "span": "45", "statement": "45 EUR a day"}]  # product.pdf was not trained


def test_key_span_scoring_wants_the_fact_not_a_near_miss():
    assert key_span("The expense tool is called Coinbasket.", "What is the expense tool called?") == "Coinbasket"
    assert span_hit("It is 45 EUR a day.", "45") and not span_hit("It is 450 EUR a day.", "45")
    assert span_hit("the harbour hall, on floor 2", "Harbour Hall")
    s = summarize([{"doc_id": "a", "hit": True}, {"doc_id": "a", "hit": True}, {"doc_id": "b", "hit": False}])
    assert s["accuracy"] == pytest.approx(2 / 3, abs=1e-4) and s["low"] <= s["accuracy"] <= s["high"]
    assert s["documents"]["a"]["known"] and not s["documents"]["b"]["known"]


def test_choose_keeps_the_best_knowledge_not_the_last_epoch():
    records = [{"step": 1, "accuracy": 0.1, "eval_loss": 0.8}, {"step": 2, "accuracy": 0.4, "eval_loss": 0.9},
               {"step": 3, "accuracy": 0.3, "eval_loss": 0.7}]
    assert choose(records, keep="best_knowledge")["step"] == 2
    assert choose(records, keep="best_eval_loss")["step"] == 3 and choose(records, keep="last")["step"] == 3
    ties = [{"step": 1, "accuracy": 0.0, "eval_loss": 0.8}, {"step": 2, "accuracy": 0.0, "eval_loss": 0.6}]
    assert choose(ties, keep="best_knowledge")["step"] == 2  # nothing learned yet: the lower eval loss
    blind = [{"step": 1, "accuracy": None, "eval_loss": None}, {"step": 2, "accuracy": None, "eval_loss": None}]
    assert choose(blind, keep="best_knowledge")["step"] == 2 == choose(blind, keep="best_eval_loss")["step"]


class Snapshots(TrainerCallback):
    """The LoRA weights at the end of each epoch, by step."""

    def __init__(self) -> None:
        self.weights = {}

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        from peft import get_peft_model_state_dict

        self.weights[state.global_step] = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


@pytest.mark.slow  # three epochs of ingest, synthesis and training: about a minute on 2 loaded cores
def test_finetune_checks_knowledge_each_epoch_and_publishes_the_kept_epoch(tmp_path, corpus, tiny_model):
    cfg = project_config(tmp_path, corpus, tiny_model, finetune={"max_steps": -1, "epochs": 3, "batch_size": 4,
                                                                 "knowledge_patience": 0, "learning_rate": 0.01,
                                                                 "knowledge_probes": 48})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    project.synthesize()
    snapshots = Snapshots()
    manifest = project.finetune(callbacks=[snapshots])
    k = manifest.knowledge
    assert k["probes"] > 0 and k["base"]["probes"] == k["probes"]
    assert [e["epoch"] for e in k["per_epoch"]] == [1.0, 2.0, 3.0]
    best = max(k["per_epoch"], key=lambda e: (e["accuracy"], -e["eval_loss"], -e["step"]))
    assert k["kept_step"] == best["step"] and k["low"] <= k["accuracy"] <= k["high"]
    assert set(k["documents"]) <= set(manifest.documents)
    published = load_file(str(project.adapters.latest("t").path / "adapter_model.safetensors"))
    kept = snapshots.weights[k["kept_step"]]
    assert published.keys() == kept.keys()
    assert all(torch.allclose(published[n], kept[n]) for n in kept)  # the kept epoch's weights, not the last's
    assert not project.workspace.checkpoints("t").exists()
    assert json.loads((project.adapters.latest("t").path / "manifest.json").read_text())["knowledge"] == k


def test_adapters_show_prints_the_check_the_epoch_kept_and_the_promotion_verdict():
    from framework.cli.adapters import knowledge_lines

    k = {"keep": "best_knowledge", "base": {"accuracy": 0.05, "low": 0.0, "high": 0.15, "hits": 1, "probes": 20},
         "per_epoch": [{"epoch": 1.0, "accuracy": 0.3, "low": 0.1, "high": 0.5, "hits": 6, "probes": 20},
                       {"epoch": 2.0, "accuracy": 0.2, "low": 0.05, "high": 0.4, "hits": 4, "probes": 20}],
         "kept_epoch": 1.0, "accuracy": 0.3, "low": 0.1, "high": 0.5, "hits": 6, "probes": 20,
         "documents": {"a": {"known": True}, "b": {"known": False}}}
    lines = knowledge_lines(k, {"promoted": False, "reason": "finetune.gate failed"})
    assert "base 0.05 [0.00, 0.15] (1/20); epoch 1 0.30 [0.10, 0.50] (6/20), epoch 2 0.20" in lines[0]
    assert lines[1].startswith("kept epoch 1 (best_knowledge): 0.30") and "1 of 2 probed" in lines[1]
    assert lines[2] == "promotion: not promoted: finetune.gate failed"
