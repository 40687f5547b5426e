"""`ragtune demo` writes under the current directory, never inside the installed package."""

import os

from framework.cli.demo import demo_dir, run_demo


def _snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_demo_runs_from_an_untouched_package_and_writes_under_the_working_directory(tmp_path, tiny_model,
                                                                                     monkeypatch):
    before = _snapshot(demo_dir())
    monkeypatch.chdir(tmp_path)
    overrides = [f"generator.model={tiny_model}", "index.embedder=hashing", "precision=fp32", "finetune.max_steps=1",
                 "generator.max_new_tokens=4", "dataset.min_examples=1"]
    result = run_demo(workspace=".ragtune-demo", overrides=overrides, say=lambda s: None, show_progress=False)
    assert _snapshot(demo_dir()) == before, "the demo wrote inside the installed package"
    workspace = tmp_path / ".ragtune-demo"
    assert result["project"].workspace.root == workspace and result["result"].report.is_relative_to(workspace)
    assert {r.mode for r in result["result"].results} == {"prompt_only", "rag", "finetuned", "combined"}
    assert os.listdir(tmp_path) == [".ragtune-demo"]
