import json

import pytest
import torch
from conftest import build_tiny_model, project_config

from framework.adapters.registry import AdapterError
from framework.project import Project, load_config_dict
from framework.training.lora import tokenize_example


def _project(tmp_path, corpus, model, **sections):
    return Project(load_config_dict(project_config(tmp_path, corpus, model, **sections)), show_progress=False)


def test_loss_covers_answer_tokens_only(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    msgs = [{"role": "user", "content": "how many leave days ?"}, {"role": "assistant", "content": "28 days ."}]
    item = tokenize_example(tok, msgs, max_length=512)
    n_prompt = sum(1 for x in item["labels"] if x == -100)
    prompt_ids = tok(tok.apply_chat_template(msgs[:1], add_generation_prompt=True, tokenize=False),
                     add_special_tokens=False)["input_ids"]
    assert n_prompt == len(prompt_ids)
    answer = [t for t in item["labels"] if t != -100]
    assert tok.decode(answer).split() == ["28", "days", ".", "<|im_end|>"]
    assert tokenize_example(tok, msgs, max_length=5) is None


@pytest.fixture
def trained(tmp_path, corpus, tiny_model):
    project = _project(tmp_path, corpus, tiny_model)
    project.ingest()
    project.synthesize()
    manifest = project.finetune(promote=True)
    return project, manifest


def test_finetune_writes_adapter_with_manifest(trained):
    project, manifest = trained
    ref = project.adapters.latest("t")
    assert ref.version == "v0001" == manifest.version
    assert (ref.path / "adapter_model.safetensors").is_file()
    on_disk = json.loads((ref.path / "manifest.json").read_text())
    assert on_disk["dataset"]["hash"] == json.loads((project.dataset_dir() / "card.json").read_text())["hash"]
    assert "docs:handbook.md" in on_disk["documents"]
    assert on_disk["metrics"]["steps"] == 2 and on_disk["metrics"]["train_loss"] > 0
    assert on_disk["base_fingerprint"] and on_disk["audience"] == []
    assert project.adapters.promoted("t") == "v0001"  # finetune(promote=True)
    assert project.finetune().version == "v0002" and project.adapters.promoted("t") == "v0001"


def test_one_base_model_serves_all_four_modes(trained):
    project, _ = trained
    q = "how many days of annual leave ?"
    answers = {m: project.ask(q, mode=m) for m in ("prompt_only", "rag", "finetuned", "combined")}
    chunk_ids = project.index.ids()
    for mode, a in answers.items():
        assert a.mode == mode and a.reason == "explicit" and a.latency_s > 0
        retrieves = mode in ("rag", "combined")
        assert bool(a.sources) == retrieves
        assert all(s.chunk_id in chunk_ids and s.text in a.prompt for s in a.sources)
        assert (a.adapter == "t-v0001") == (mode in ("finetuned", "combined"))
        assert q in a.prompt
    gen = project.generator
    enc = gen.tokenizer(["how many days"], return_tensors="pt")
    with torch.no_grad():
        gen.model.set_adapter(project.adapters.get("t", "v0001").load_key)  # the weights' key in memory
        with_adapter = gen.model(**enc).logits
        with gen.model.disable_adapter():
            without = gen.model(**enc).logits
    assert not torch.allclose(with_adapter, without)


def test_auto_mode_records_why(trained):
    project, _ = trained
    a = project.ask("how many days of annual leave ?", mode="auto")
    assert a.reason.startswith("auto: top retrieval score") and a.mode in ("combined", "finetuned")


def test_group_default_mode(trained):
    project, _ = trained
    routed = Project(project.config.model_copy(update={"router": project.config.router.model_copy(
        update={"groups": {"support": "prompt_only"}})}), show_progress=False)
    a = routed.ask("what is the meal limit ?", groups=["support"])
    assert a.mode == "prompt_only" and a.reason == "group support"
    assert routed.ask("what is the meal limit ?").mode == "rag"


def test_finetuned_without_adapter_is_refused(tmp_path, corpus, tiny_model):
    project = _project(tmp_path, corpus, tiny_model)
    project.ingest()
    with pytest.raises(AdapterError, match="ragtune finetune"):
        project.ask("what is the meal limit ?", mode="finetuned")
    assert project.ask("what is the meal limit ?", mode="rag").sources


def test_adapter_on_another_base_is_refused(trained, tmp_path):
    project, _ = trained
    other = build_tiny_model(tmp_path / "other-base", seed=1)  # same shapes, other weights
    cfg = project.config.model_copy(update={"generator": project.config.generator.model_copy(
        update={"model": str(other)})})
    with pytest.raises(AdapterError, match="trained on base model"):
        Project(cfg, show_progress=False).ask("x ?", mode="finetuned")


def test_auto_answers_without_an_adapter_trained_on_another_base(trained, tmp_path):
    # auto took the promoted adapter as usable, chose combined or finetuned, then check_base refused it.
    project, manifest = trained
    other = build_tiny_model(tmp_path / "other-base", seed=1)  # same shapes, other weights
    cfg = project.config.model_copy(update={"generator": project.config.generator.model_copy(
        update={"model": str(other)})})
    moved = Project(cfg, show_progress=False)
    a = moved.ask("how many days of annual leave ?", mode="auto")
    assert a.mode in ("rag", "prompt_only") and a.adapter is None
    assert a.reason.startswith("auto: top retrieval score") and "; adapter t-v0001 not used: it was trained on " \
        f"base model {manifest.base_model!r} (fingerprint {manifest.base_fingerprint}), not on generator.model" in a.reason
    assert not moved.generator._adapters  # nothing was loaded to find out
    same = project.ask("how many days of annual leave ?", mode="auto")
    assert same.mode in ("combined", "finetuned") and same.adapter == "t-v0001" and "not used" not in same.reason


def test_unknown_mode_lists_allowed(trained):
    project, _ = trained
    with pytest.raises(ValueError, match="allowed: prompt_only, rag, finetuned, combined, auto"):
        project.ask("x ?", mode="fine-tuned")


def test_answer_only_logits_give_the_same_loss_as_full_logits(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorWithFlattening

    from framework.training.lora import AnswerOnlyPackedCollator

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    convs = [[{"role": "user", "content": "how many leave days ?"}, {"role": "assistant", "content": "28 days ."}],
             [{"role": "user", "content": "what is the meal limit ?"}, {"role": "assistant", "content": "45 eur"}]]
    feats = [tokenize_example(tok, c, 512) for c in convs]
    with torch.no_grad():
        full = model(**DataCollatorWithFlattening()(feats)).loss
        packed = AnswerOnlyPackedCollator()(feats)
        out = model(**packed)
    assert out.logits.shape[1] == sum(1 for f in feats for x in f["labels"] if x != -100)
    assert torch.allclose(full, out.loss, atol=1e-5)


def test_adapter_serves_only_its_audience(tmp_path, corpus, tiny_model):
    restricted = [{"name": "docs", "type": "files", "path": str(corpus), "acl": ["hr", "finance"]}]
    project = _project(tmp_path, corpus, tiny_model, sources=restricted, dataset={"audience": ["hr", "finance"]})
    project.ingest()
    project.synthesize()
    assert project.finetune(promote=True).audience == ("hr", "finance")
    with pytest.raises(PermissionError, match="not in that audience"):
        project.ask("what is the meal limit ?", mode="finetuned", user="sam", groups=["sales"])
    assert project.ask("what is the meal limit ?", mode="finetuned", groups=["hr"]).adapter == "t-v0001"
    auto = project.ask("what is the meal limit ?", mode="auto", groups=["sales"])
    assert auto.mode == "prompt_only" and auto.adapter is None and not auto.sources


def test_finetune_estimate_counts_tokens_and_measures_speed(tmp_path, corpus, tiny_model):
    import math

    from transformers import AutoTokenizer

    from framework.training.lora import tokenize_rows

    project = _project(tmp_path, corpus, tiny_model, finetune={"max_steps": -1, "epochs": 2.0})
    project.ingest()
    project.synthesize()
    est = project.estimate_finetune()
    rows = [json.loads(x) for x in (project.dataset_dir() / "train.jsonl").read_text().splitlines()]
    items, _ = tokenize_rows(AutoTokenizer.from_pretrained(tiny_model), rows, 512)
    assert est.examples == len(items) == len(rows)
    assert est.tokens_per_epoch == sum(len(i["input_ids"]) for i in items) and est.tokens == 2 * est.tokens_per_epoch
    assert est.steps == math.ceil(len(items) / 4) * 2 and est.tokens_per_second > 0
    assert est.seconds == round(est.tokens / est.tokens_per_second, 1) and "tokens/s measured" in est.describe()
    assert project.adapters.latest("t") is None  # measuring published nothing


def test_finetune_dry_run_prints_only_the_estimate(tmp_path, corpus, tiny_model):
    import yaml
    from typer.testing import CliRunner

    from framework.cli.main import app

    path = tmp_path / "ragtune.yaml"
    path.write_text(yaml.safe_dump(project_config(tmp_path, corpus, tiny_model)))
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "-c", str(path)]).exit_code == 0
    assert runner.invoke(app, ["synth", "-c", str(path)]).exit_code == 0
    result = runner.invoke(app, ["finetune", "-c", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    est = json.loads(result.stdout)
    assert est["steps"] == 2 and est["tokens"] > 0 and est["tokens_per_second"] > 0
    assert est["memory"]["fits"] and est["memory"]["base_bytes"] > 0  # the peak memory estimate (training.memory)
    assert not (tmp_path / "ws" / "adapters" / "t").exists()
    result = runner.invoke(app, ["finetune", "-c", str(path)])
    assert result.exit_code == 0 and "finetune estimate:" in result.output and "adapter t/v0001" in result.output
    assert "memory estimate on " in result.output and "activations for" in result.output
