"""The real-data evaluation recipes' subset and runner: hand-checked splits, a whole run on a tiny
model, and a clear exit when the shared data sets are absent."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from framework.evaluation.subset import TRAINED, UNTRAINED, pick_subset, plan_budget

ROOT = Path(__file__).resolve().parents[1]


def test_budget_by_hand():
    b = plan_budget(60, available=100)
    # 2 questions per 3 minutes; 60% of 3600 s at 150 tokens/s over 15 tokens/word x 3 epochs = 7,200 words
    assert (b.questions, b.trained_words, b.train_seconds) == (40, 7200, 2160)
    assert plan_budget(3, available=100).questions == 6 and plan_budget(600, available=50).questions == 50
    with pytest.raises(ValueError, match="must be positive"):
        plan_budget(0, available=10)


def test_no_question_straddles_trained_and_untrained_documents():
    questions = [{"question": f"q{i}", "answer": "a", "sources": [f"d{i % 5}.md", f"d{(i + 1) % 5}.md#page=2"]}
                 for i in range(10)] + [{"question": "no gold", "answer": "a"},
                                        {"question": "unknown doc", "answer": "a", "sources": ["zzz.md"]}]
    words = {f"d{i}.md": 100 for i in range(8)}
    s = pick_subset(questions, words, n_questions=6, max_trained_words=10_000, seed=3)
    assert set(s.trained).isdisjoint(s.untrained) and s.questions
    for q in s.questions:
        docs = {g.split("#")[0] for g in q["sources"]}
        assert docs <= set(s.trained if q["split_kind"] == TRAINED else s.untrained)
    assert s.distractors and set(s.distractors).isdisjoint(set(s.trained) | set(s.untrained))  # not cited by a sample
    assert s == pick_subset(questions, words, n_questions=6, max_trained_words=10_000, seed=3)


def test_the_word_budget_bounds_trained_documents_but_keeps_one_question():
    questions = [{"question": f"q{i}", "answer": "a", "sources": [f"d{i}.md"]} for i in range(8)]
    words = {f"d{i}.md": 500 for i in range(8)}
    s = pick_subset(questions, words, n_questions=8, max_trained_words=1000, seed=0)
    kinds = [q["split_kind"] for q in s.questions]
    assert kinds.count(TRAINED) == 2 == len(s.trained) and kinds.count(UNTRAINED) == 4
    tight = pick_subset(questions, words, n_questions=4, max_trained_words=10, seed=0)
    assert len(tight.trained) == 1  # over the budget, but a comparison needs one trained question


def test_recipes_exit_clearly_without_the_data_sets(tmp_path):
    for recipe in ("eval_contoso.py", "eval_anthropic_docs.py"):
        run = subprocess.run([sys.executable, str(ROOT / "recipes" / recipe), "--data", str(tmp_path / "absent")],
                             capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
        assert run.returncode == 1 and "data set folder" in run.stderr and "Nothing was run" in run.stderr


def test_the_runner_end_to_end_on_a_tiny_model(tmp_path, tiny_model, monkeypatch, capsys):
    from framework.cli.eval_recipe import SharedSet, run_eval_recipe

    topics = ["leave", "meal", "vpn", "laptop", "office", "train", "password", "expense"]
    docs = {f"{t}.md": f"# {t}\n\nThe {t} policy says employees must submit the {t} form within {i + 2} days."
            for i, t in enumerate(topics)}
    questions = [{"question": f"how many days for the {t} form ?", "answer": f"within {i + 2} days",
                  "sources": [f"{t}.md"]} for i, t in enumerate(topics)]
    (tmp_path / "data").mkdir()
    sets = ["finetune.max_steps=2", "finetune.batch_size=4", "generator.max_new_tokens=4"]
    monkeypatch.setattr(sys, "argv", ["eval_x.py", "--budget-minutes", "3", "--data", str(tmp_path / "data"),
                                      "--workspace", str(tmp_path / "ws"), "--config",
                                      str(ROOT / "recipes" / "eval_contoso.yaml"), "--set", f"generator.model={tiny_model}",
                                      "--set", "index.embedder=hashing", "--set", "precision=fp32",
                                      *[x for s in sets for x in ("--set", s)]])
    run_eval_recipe("doc", str(ROOT / "recipes" / "eval_x.py"), name="x",
                    load=lambda data: SharedSet(documents=docs, questions=questions))
    out = capsys.readouterr().out
    report = Path(out.split("report: ")[1].strip())
    saved = json.loads((report / "report.json").read_text())
    assert set(saved["results"]) == {"prompt_only", "rag", "finetuned", "combined"}
    assert set(saved["results"]["combined"]["by_split_kind"]) == {TRAINED, UNTRAINED}
    trained = set(saved["subset"]["trained_documents"])
    ids = {d.split(":", 1)[1] for d in json.loads((sorted((tmp_path / "ws" / "adapters" / "eval-contoso").glob(
        "v*"))[-1] / "manifest.json").read_text())["documents"]}
    assert ids == trained  # the adapter learned the trained documents and nothing else
    assert (tmp_path / "ws" / "questions.jsonl").is_file() and saved["estimate"]["tokens_per_second"] > 0
