"""generator.backend: openai against a local OpenAI-compatible endpoint (real HTTP on 127.0.0.1), and
`ragtune adapters export`, the plain peft folder such an endpoint (vLLM) loads."""

from __future__ import annotations

import json
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest
import yaml
from conftest import local_http_server, project_config
from typer.testing import CliRunner

from framework.adapters.manifest import AdapterManifest
from framework.adapters.registry import AdapterError, AdapterRegistry
from framework.cli.main import app
from framework.config import ConfigError
from framework.project import Project, load_config_dict
from framework.serving.remote import BackendError


class _Endpoint(BaseHTTPRequestHandler):
    """Answers chat completions with `<model>: <number of messages>`; model `down` answers 503."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.seen.append({**body, "authorization": self.headers.get("authorization"), "path": self.path})
        if body["model"] == "down":
            self.send_response(503)
            self.end_headers()
            return
        reply = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant",
                                                                 "content": f" {body['model']}: {len(body['messages'])} "},
                                         "finish_reason": "length" if body["max_tokens"] < 3 else "stop"}],
                            "usage": {"completion_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@contextmanager
def endpoint():
    with local_http_server(_Endpoint, seen=[]) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server


def _publish(root, name, audience=()):
    """An adapter version known to the registry only by its manifest: the weights live on the endpoint."""
    staging = root / name / ".incoming"
    staging.mkdir(parents=True)
    ref = AdapterRegistry(root).publish(name, staging, AdapterManifest(audience=tuple(audience)))
    AdapterRegistry(root).promote(name, ref.version)


@pytest.fixture
def remote(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("FAKE_ENDPOINT_KEY", "k-123")
    with endpoint() as (url, server):
        cfg = project_config(tmp_path, corpus, generator={
            "backend": "openai", "base_url": url, "api_model": "base-model", "api_key_env": "FAKE_ENDPOINT_KEY",
            "adapter_models": {"t@v0001": "t-lora"}, "http_retries": 1},
            router={"adapter": "t", "group_adapters": {"hr": "hrad"}})
        project = Project(load_config_dict(cfg), show_progress=False)
        project.ingest()
        _publish(project.adapters.root, "t")
        _publish(project.adapters.root, "hrad", audience=["hr"])
        yield project, server


def test_the_endpoint_answers_each_mode_with_the_mapped_model(remote):
    project, server = remote
    rag = project.ask("what is the meal limit ?", mode="rag")
    assert rag.text == "base-model: 1" and rag.adapter is None and rag.sources and rag.generated_tokens == 2
    sent = server.seen[-1]
    assert sent["model"] == "base-model" and sent["temperature"] == 0 and sent["max_tokens"] == 8
    assert sent["authorization"] == "Bearer k-123" and sent["path"] == "/v1/chat/completions"
    assert rag.sources[0].text in sent["messages"][-1]["content"] and rag.prompt.startswith("user: ")
    tuned = project.ask("what is the meal limit ?", mode="combined")
    assert (tuned.text, tuned.adapter, server.seen[-1]["model"]) == ("t-lora: 1", "t-v0001", "t-lora")
    short = project.ask_many(["what is the meal limit ?"], mode="finetuned", max_new_tokens=2)[0]
    assert short.truncated and server.seen[-1]["max_tokens"] == 2
    assert "base_model_dir" not in project.__dict__  # no local weights were needed


def test_acl_and_unmapped_adapters_are_refused_before_the_endpoint_is_asked(remote):
    project, server = remote
    asked = len(server.seen)
    with pytest.raises(AdapterError, match=r"adapter hrad@v0001 has no model on the generation endpoint.*"
                                           r"generator.adapter_models"):
        project.ask("what is the meal limit ?", mode="finetuned", groups=["hr"])
    restricted = Project(project.config.model_copy(update={"router": project.config.router.model_copy(
        update={"adapter": "hrad"})}), show_progress=False)
    with pytest.raises(PermissionError, match="not in that audience"):
        restricted.ask("what is the meal limit ?", mode="finetuned", groups=["sales"])
    assert len(server.seen) == asked


def test_auto_answers_without_an_adapter_the_endpoint_does_not_serve(remote):
    # auto took hrad@v0001 (promoted, hr in its audience) as usable, chose combined or finetuned, then failed
    # because generator.adapter_models maps no endpoint model to it.
    project, server = remote
    unmapped = project.ask("what is the meal limit ?", mode="auto", groups=["hr"])
    assert unmapped.mode in ("rag", "prompt_only") and unmapped.adapter is None
    assert unmapped.reason.startswith("auto: top retrieval score")
    assert unmapped.reason.endswith("; adapter hrad-v0001 not used: generator.adapter_models maps no endpoint "
                                    "model to hrad@v0001")
    assert server.seen[-1]["model"] == "base-model"
    mapped = project.ask("what is the meal limit ?", mode="auto")  # t@v0001 is mapped: auto uses it
    assert mapped.mode in ("combined", "finetuned") and mapped.adapter == "t-v0001" and "not used" not in mapped.reason


def test_endpoint_failures_and_settings_are_clear_errors(remote, monkeypatch):
    project, server = remote
    down = Project(project.config.model_copy(update={"generator": project.config.generator.model_copy(
        update={"api_model": "down"})}), show_progress=False)
    asked = len(server.seen)
    with pytest.raises(BackendError, match="model 'down'.*HTTP 503"):
        down.ask("what is the meal limit ?", mode="prompt_only")
    assert len(server.seen) == asked + 2  # one retry (generator.http_retries: 1)
    monkeypatch.delenv("FAKE_ENDPOINT_KEY")
    with pytest.raises(BackendError, match="FAKE_ENDPOINT_KEY is not set"):
        Project(project.config, show_progress=False).ask("x ?", mode="prompt_only")
    with pytest.raises(ConfigError, match="backend openai needs base_url and api_model"):
        load_config_dict({"generator": {"backend": "openai"}})
    with pytest.raises(ConfigError, match="apply only to backend: openai"):
        load_config_dict({"generator": {"base_url": "http://127.0.0.1:1/v1"}})
    with pytest.raises(ConfigError, match="adapter_models"):
        load_config_dict({"generator": {"backend": "openai", "base_url": "http://x/v1", "api_model": "m",
                                        "adapter_models": {"t-v0001": "t"}}})


def test_export_writes_a_plain_peft_folder(tmp_path, corpus, tiny_model):
    cfg = project_config(tmp_path, corpus, tiny_model)
    (tmp_path / "ragtune.yaml").write_text(yaml.safe_dump(cfg))
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    project.synthesize()
    project.finetune()
    run = CliRunner().invoke(app, ["adapters", "export", "t", "-c", str(tmp_path / "ragtune.yaml")])
    assert run.exit_code == 3 and "pass --version, or promote one" in run.output  # nothing served yet
    run = CliRunner().invoke(app, ["adapters", "export", "t", "--version", "v0001", "--base", "org/base-model",
                                   "--out", str(tmp_path / "out"), "-c", str(tmp_path / "ragtune.yaml"), "--json"])
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    out = tmp_path / "out"
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/base-model" and config["peft_type"] == "LORA"
    assert config["target_modules"] == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert (out / "adapter_model.safetensors").read_bytes() == \
        (project.adapters.get("t", "v0001").path / "adapter_model.safetensors").read_bytes()
    assert report["max_logit_diff"] <= 1e-5 and report["rank"] == 4 and report["audience"] == []
    assert json.loads((out / "ragtune_adapter.json").read_text())["adapter"] == "t-v0001"
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                     "ragtune_adapter.json"]
