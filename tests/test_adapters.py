"""Adapter registry: versions, promote/pin/delete, several adapters on one base, merge, staleness."""

import json
import shutil

import pytest
import torch
import yaml
from conftest import build_tiny_model, project_config
from typer.testing import CliRunner

from framework.adapters.manifest import AdapterManifest
from framework.adapters.merge import MergeVerificationError, merge_adapter
from framework.adapters.registry import AdapterError, AdapterRegistry
from framework.cli.main import app
from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.serving.generator import HFGenerator
from framework.serving.router import served_adapter

runner = CliRunner()


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def two_versions(tmp_path, corpus, tiny_model):
    """A project with adapter t at v0001 and v0002 (different seeds, so different weights)."""
    path = tmp_path / "ragtune.yaml"
    path.write_text(yaml.safe_dump(project_config(tmp_path, corpus, tiny_model, finetune={"learning_rate": 0.05})))
    project = Project(load_config_dict(yaml.safe_load(path.read_text())), show_progress=False)
    project.ingest()
    project.synthesize()
    project.finetune()
    project.config = project.config.model_copy(update={"finetune": project.config.finetune.model_copy(
        update={"seed": 1})})
    project.finetune()
    return project, path


def test_a_new_version_serves_only_once_promoted(two_versions):
    # The rule changed with issue 13: "nothing promoted: the newest" let a fresh training run answer users
    # before anyone checked it. Now a version serves once promoted (or with adapters.serve: latest).
    project, _ = two_versions
    reg = project.adapters
    q = "what is the meal limit ?"
    assert [r.version for r in reg.versions("t")] == ["v0001", "v0002"]
    with pytest.raises(AdapterError, match="none is promoted.*ragtune adapters promote t v0002"):
        served_adapter(reg, project.config.router, Principal())
    with pytest.raises(AdapterError, match="none is promoted"):
        project.ask(q, mode="finetuned")
    assert project.ask(q, mode="auto").adapter is None  # auto answers without the unpromoted adapter
    reg.promote("t", "v0001")
    assert served_adapter(reg, project.config.router, Principal()).version == "v0001"
    assert project.ask(q, mode="finetuned").adapter == "t-v0001"
    reg.promote("t", "v0002")  # live with the next question, in the running project
    assert project.ask(q, mode="finetuned").adapter == "t-v0002"
    with pytest.raises(AdapterError, match="no version 'v0009'"):
        reg.promote("t", "v0009")


def test_config_pins_and_serve_latest(two_versions):
    project, _ = two_versions
    project.adapters.promote("t", "v0001")
    router = project.config.router
    pinned = Project(project.config.model_copy(update={"router": router.model_copy(
        update={"adapter_version": "v0002"})}), show_progress=False)
    assert served_adapter(pinned.adapters, pinned.config.router, Principal()).version == "v0002"
    by_spec = Project(project.config.model_copy(update={"router": router.model_copy(
        update={"adapter": "t@v0002"})}), show_progress=False)
    assert by_spec.ask("what is the meal limit ?", mode="finetuned").adapter == "t-v0002"
    latest = load_config_dict({**project.config.model_dump(mode="json"), "adapters": {"serve": "latest"}})
    assert served_adapter(project.adapters, latest.router, Principal(), serve=latest.adapters.serve).version == "v0002"
    pinned_latest = latest.router.model_copy(update={"adapter_version": "v0001"})
    assert served_adapter(project.adapters, pinned_latest, Principal(), serve="latest").version == "v0001"


def test_delete_refuses_the_promoted_version_without_force(two_versions):
    project, _ = two_versions
    reg = project.adapters
    reg.promote("t", "v0002")
    with pytest.raises(AdapterError, match="promoted version"):
        reg.delete("t", "v0002")
    reg.delete("t", "v0001")
    assert [r.version for r in reg.versions("t")] == ["v0002"]
    reg.delete("t", "v0002", force=True)
    assert reg.versions("t") == [] and reg.promoted("t") is None


def test_a_deleted_version_number_is_never_published_again(tmp_path):
    # next_version_dir was the highest folder + 1: after deleting t v0001 the next run published another
    # t-v0001, which a running generator (holding t-v0001 in memory), a pin or an export took for the old one.
    reg = AdapterRegistry(tmp_path / "adapters")

    def publish(audience: tuple[str, ...]) -> str:
        staging = reg.staging_dir("t")
        staging.mkdir(parents=True, exist_ok=True)
        return reg.publish("t", staging, AdapterManifest(audience=audience)).version

    assert publish(("hr",)) == "v0001"
    reg.promote("t", "v0001")
    reg.delete("t", "v0001", force=True)
    assert reg.versions("t") == [] and reg.promoted("t") is None and reg.names() == []
    assert publish(()) == "v0002"
    reg.promote("t", "v0002")
    assert json.loads((reg.root / "t" / "registry.json").read_text())["last_version"] == "v0002"
    (reg.root / "t" / "registry.json").unlink()  # a lost record (or an older workspace): the folders still count
    assert publish(()) == "v0003" and reg.promoted("t") is None


QUESTIONS = ["what is the meal limit ?", "how many days of annual leave ?", "when is the office open ?"]


def test_a_running_project_answers_with_the_weights_published_now(tmp_path, corpus, tiny_model):
    # The hr-only t-v0001 was loaded in a running project; deleted and retrained for everyone, it came back as
    # t-v0001, and the project answered everyone with the hr weights it still held under that key.
    hr_only = project_config(tmp_path, corpus, tiny_model, finetune={"learning_rate": 0.05},
                             dataset={"audience": ["hr"]})
    for_all = {**hr_only, "dataset": {**hr_only["dataset"], "audience": []},
               "finetune": {**hr_only["finetune"], "seed": 1}}
    running = Project(load_config_dict(hr_only), show_progress=False)
    running.ingest()
    running.synthesize()
    assert running.finetune(promote=True).audience == ("hr",)
    old = running.ask_many(QUESTIONS, mode="finetuned", principal=Principal(groups=("hr",)))
    assert {a.adapter for a in old} == {"t-v0001"}
    running.adapters.delete("t", "v0001", force=True)
    trainer = Project(load_config_dict(for_all), show_progress=False)
    trainer.synthesize()
    retrained = trainer.finetune(promote=True)
    assert (retrained.version, retrained.audience) == ("v0002", ())

    def fresh_answers() -> list[str]:
        project = Project(load_config_dict(for_all), show_progress=False)
        return [a.text for a in project.ask_many(QUESTIONS, mode="finetuned", principal=Principal())]

    new = fresh_answers()
    assert new != [a.text for a in old], "the test needs weights that answer differently"
    now = running.ask_many(QUESTIONS, mode="finetuned", principal=Principal())
    assert [(a.adapter, a.text) for a in now] == [("t-v0002", text) for text in new]
    # Weights replaced by hand in the served version's folder are loaded again as well.
    trainer.config = trainer.config.model_copy(update={"finetune": trainer.config.finetune.model_copy(
        update={"seed": 2})})
    other = trainer.adapters.get("t", trainer.finetune().version)
    served = running.adapters.get("t", "v0002")
    shutil.copyfile(other.path / "adapter_model.safetensors", served.path / "adapter_model.safetensors")
    replaced = fresh_answers()
    assert replaced != new, "the test needs weights that answer differently"
    assert [a.text for a in running.ask_many(QUESTIONS, mode="finetuned", principal=Principal())] == replaced


def test_cli_list_show_promote_delete(two_versions):
    _, path = two_versions
    listed = json.loads(_cli("adapters", "list", "-c", path, "--json").stdout)
    assert [(r["version"], r["serving"]) for r in listed] == [("v0001", False), ("v0002", False)]  # none promoted
    listed = json.loads(_cli("adapters", "list", "-c", path, "--json", "--set", "adapters.serve=latest").stdout)
    assert [(r["version"], r["serving"]) for r in listed] == [("v0001", False), ("v0002", True)]
    assert json.loads(_cli("adapters", "show", "t", "-c", path, "--json").stdout)["manifest"]["version"] == "v0002"
    assert _cli("adapters", "promote", "t", "v0001", "-c", path).exit_code == 0
    listed = json.loads(_cli("adapters", "list", "-c", path, "--json").stdout)
    assert [(r["promoted"], r["serving"]) for r in listed] == [(True, True), (False, False)]
    shown = json.loads(_cli("adapters", "show", "t", "-c", path, "--json").stdout)
    assert shown["manifest"]["version"] == "v0001"
    pinned = json.loads(_cli("adapters", "show", "t@v0002", "-c", path, "--json").stdout)
    assert pinned["manifest"]["version"] == "v0002"
    refused = _cli("adapters", "delete", "t", "v0001", "-c", path)
    assert refused.exit_code == 3 and "--force" in refused.output
    assert _cli("adapters", "delete", "t", "v0001", "--force", "-c", path).exit_code == 0
    missing = _cli("adapters", "show", "t@v0001", "-c", path)
    assert missing.exit_code == 3 and "versions: v0002" in missing.output


def test_a_group_pin_is_the_version_marked_served(two_versions, tmp_path):
    # `adapters list/show`, merge and export took the promoted version for a group_adapters entry that pins
    # another one (hr: t@v0002), so they marked and exported weights nobody in that group is answered with.
    project, path = two_versions
    project.adapters.promote("t", "v0001")
    group_only = ("--set", "router.adapter=other", "--set", "router.group_adapters.hr=t@v0002")
    listed = json.loads(_cli("adapters", "list", "-c", path, "--json", *group_only).stdout)
    assert [(r["version"], r["promoted"], r["serving"]) for r in listed] == [("v0001", True, False),
                                                                             ("v0002", False, True)]
    shown = json.loads(_cli("adapters", "show", "t", "-c", path, "--json", *group_only).stdout)
    assert shown["manifest"]["version"] == "v0002"
    exported = _cli("adapters", "export", "t", "--out", tmp_path / "export", "-c", path, "--json", *group_only)
    assert exported.exit_code == 0 and json.loads(exported.stdout)["adapter"] == "t-v0002"
    both = ("--set", "router.group_adapters.hr=t@v0002")  # router.adapter t serves the promoted v0001 to others
    listed = json.loads(_cli("adapters", "list", "-c", path, "--json", *both).stdout)
    assert [(r["version"], r["serving"]) for r in listed] == [("v0001", True), ("v0002", True)]
    ambiguous = _cli("adapters", "merge", "t", "-c", path, *both)
    assert ambiguous.exit_code == 3 and "serves versions v0001, v0002" in ambiguous.output
    assert "--version v0001" in ambiguous.output


def test_two_named_adapters_share_one_base_in_memory(two_versions, tmp_path):
    project, _ = two_versions
    root = project.adapters.root
    shutil.copytree(root / "t" / "v0002", root / "support" / "v0001")  # a second team's adapter
    gen = HFGenerator(project.base_model_dir)
    base = gen.model
    gen.load_adapter("t", project.adapters.get("t", "v0001").path)
    gen.load_adapter("support", project.adapters.get("support", "v0001").path)
    assert gen.model.get_base_model() is base
    enc = gen.tokenizer(["how many days of annual leave ?"], return_tensors="pt")
    with torch.no_grad():
        logits = {}
        for key in ("t", "support", None, "t"):
            with gen._adapter_context(key):
                logits.setdefault(key, []).append(gen.model(**enc).logits)
    assert torch.equal(logits["t"][0], logits["t"][1])  # switching back gives the same output
    assert not torch.allclose(logits["t"][0], logits["support"][0])
    assert not torch.allclose(logits["t"][0], logits[None][0])


def test_group_adapters_route_each_team_to_its_adapter(two_versions):
    project, _ = two_versions
    root = project.adapters.root
    shutil.copytree(root / "t" / "v0001", root / "support" / "v0001")
    project.adapters.promote("t", "v0002")
    project.adapters.promote("support", "v0001")
    cfg = project.config.model_copy(update={"router": project.config.router.model_copy(
        update={"group_adapters": {"support": "support"}})})
    routed = Project(cfg, show_progress=False)
    a = routed.ask_many(["what is the meal limit ?"], mode="finetuned", principal=Principal(groups=("support",)))[0]
    b = routed.ask_many(["what is the meal limit ?"], mode="finetuned", principal=Principal(groups=("sales",)))[0]
    assert (a.adapter, b.adapter) == ("support-v0001", "t-v0002")
    assert routed.generator.model.get_base_model() is not None and len(routed.generator._adapters) == 2


def test_merge_writes_a_verified_full_model(two_versions, tmp_path):
    project, path = two_versions
    result = _cli("adapters", "merge", "t", "--version", "v0001", "--out", tmp_path / "merged", "-c", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    out = tmp_path / "merged"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert (out / "tokenizer.json").is_file() and not (out / "adapter_config.json").exists()
    assert report["changed_tensors"] > 0 and report["max_logit_diff"] <= 1e-3
    recorded = json.loads((tmp_path / "merged" / "ragtune_merge.json").read_text())
    manifest = project.adapters.get("t", "v0001").manifest
    assert recorded["audience"] == list(manifest.audience) and recorded["document_acl"] == manifest.document_acl
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out)
    gen = HFGenerator(project.base_model_dir)
    gen.load_adapter("t", project.adapters.get("t", "v0001").path)
    enc = gen.tokenizer(["what is the meal limit ?"], return_tensors="pt")
    with torch.no_grad():
        gen.model.set_adapter("t")
        assert torch.allclose(merged(**enc).logits, gen.model(**enc).logits, atol=1e-4)
        with gen.model.disable_adapter():
            assert not torch.allclose(merged(**enc).logits, gen.model(**enc).logits, atol=1e-4)


def test_merge_of_an_untrained_adapter_fails_loudly(tiny_model, tmp_path):
    """A LoRA whose B is still zero changes nothing: the merge must say so and write nothing."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from framework.adapters.manifest import AdapterManifest
    from framework.adapters.registry import base_fingerprint

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    staging = tmp_path / "reg" / "z" / ".incoming"
    model.save_pretrained(staging)
    ref = AdapterRegistry(tmp_path / "reg").publish("z", staging, AdapterManifest(base_fingerprint=base_fingerprint(tiny_model)))
    with pytest.raises(MergeVerificationError, match="equals the base model"):
        merge_adapter(tiny_model, ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    other = build_tiny_model(tmp_path / "other", seed=3)
    with pytest.raises(AdapterError, match="trained on base model"):
        merge_adapter(other, ref, tmp_path / "out")


def test_show_reports_changed_and_deleted_documents(two_versions, corpus):
    project, path = two_versions
    fresh = json.loads(_cli("adapters", "show", "t", "-c", path, "--json").stdout)["staleness"]
    assert fresh["changed"] == fresh["acl_changed"] == fresh["deleted"] == [] and fresh["unchanged"] >= 2
    (corpus / "handbook.md").write_text((corpus / "handbook.md").read_text().replace("28 days", "30 days"))
    (corpus / "policies" / "expenses.txt").unlink()
    project.ingest()
    result = _cli("adapters", "show", "t", "-c", path)
    assert result.exit_code == 0, result.output
    assert "1 changed, 0 with new readers, 1 deleted" in result.output
    assert "changed  docs:handbook.md" in result.output and "deleted  docs:policies/expenses.txt" in result.output
    stale = json.loads(_cli("adapters", "show", "t", "-c", path, "--json").stdout)["staleness"]
    assert stale["changed"] == ["docs:handbook.md"] and stale["deleted"] == ["docs:policies/expenses.txt"]


def test_show_reports_documents_whose_readers_changed(two_versions):
    project, path = two_versions
    assert project.adapters.latest("t").manifest.document_acl["docs:product.pdf"] == "public"
    cfg = yaml.safe_load(path.read_text())
    cfg["sources"][0].update({"public": False, "acl": ["finance"]})  # no longer public: readable by finance only
    path.write_text(yaml.safe_dump(cfg))
    assert _cli("ingest", "-c", path, "--json").exit_code == 0
    stale = json.loads(_cli("adapters", "show", "t", "-c", path, "--json").stdout)["staleness"]
    learned = sorted(project.adapters.latest("t").manifest.documents)
    assert stale["acl_changed"] == learned and stale["changed"] == stale["deleted"] == []
    assert "readers  docs:product.pdf" in _cli("adapters", "show", "t", "-c", path).output
