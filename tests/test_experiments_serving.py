"""A/B experiments end to end: an experiment in ragtune.yaml, many users asking the live server with the
official openai client, feedback posted, the report made by `ragtune ab report` with its charts; the
precedence explicit > experiment arm > group default > config default; a config change that stops it."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from typer.testing import CliRunner

import framework
from framework.adapters.registry import AdapterError
from framework.cli.main import app as cli
from framework.config import RouterConfig
from framework.experiments.assignment import assign_unit
from framework.experiments.store import UnknownRequestError
from framework.records import Principal
from framework.serving.ab import check_arms
from framework.serving.auth import TokenTable
from framework.serving.router import choose_mode
from framework.serving.server import create_app

from asgi_server import serving

USERS = [f"u{i:02d}" for i in range(24)]
QUESTIONS = ["what is the meal limit ?", "how many days of annual leave ?", "when is the office open ?"]
LEAVE = {"name": "leave-answers", "salt": "e2e-1",
         "arms": [{"name": "control", "mode": "rag"},
                  {"name": "tuned", "mode": "combined", "adapter": "t", "top_k": 1, "prompt": "concise"}]}
BY_END_USER = {"name": "by-end-user", "unit": "end_user", "audience": ["hr"], "log_text": True,
               "arms": [{"name": "closed", "mode": "prompt_only", "weight": 3}, {"name": "open", "mode": "rag"}]}


def write_config(base: dict, folder: Path, experiments: list[dict], name: str = "ragtune.yaml") -> Path:
    tokens = [{"user": u, "groups": ["hr"], "token_sha256": hashlib.sha256(f"tok-{u}".encode()).hexdigest()}
              for u in USERS]
    cfg = {**base, "experiments": experiments, "experiments_store": f"sqlite:///{folder / 'ab.sqlite'}",
           "serve": {"tokens": tokens}}
    path = folder / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def live(two_audiences_config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ab")
    path = write_config(two_audiences_config, folder, [LEAVE, BY_END_USER])
    project = framework.load(path, show_progress=False)
    tokens = TokenTable.from_config(project.config.serve.tokens, environ={})
    with serving(create_app(project.router, project.config.serve, tokens=tokens,
                            experiments=project.experiments)) as url:
        yield project, url, path
    project.close()


def ask(url: str, caller: str, model: str, question: str = QUESTIONS[0], **kw):
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=f"tok-{caller}", max_retries=0)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}], **kw)


def feedback(url: str, user: str, body) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/v1/feedback", content=content, headers={"authorization": f"Bearer tok-{user}"})


def exposures(project, experiment: str) -> list:
    return project.experiments.store.exposures(experiment)


def test_many_users_through_the_live_server_then_feedback_then_the_report(live, tmp_path):
    project, url, path = live
    assert [m.id for m in openai.OpenAI(base_url=f"{url}/v1", api_key="tok-u00").models.list()][-2:] == \
        ["leave-answers", "by-end-user"]
    calls = [(u, model, q) for u in USERS for model, q in (("ragtune", QUESTIONS[0]), ("ragtune", QUESTIONS[1]),
                                                          ("leave-answers", QUESTIONS[2]))]
    with ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(pool.map(lambda c: ask(url, *c), calls))
    cfg = project.experiments.get("leave-answers")
    arm_of = {u: assign_unit(cfg, u).arm for u in USERS}
    assert set(arm_of.values()) == {"control", "tuned"}
    found = {q: len(project.retrieve(q, principal=Principal(user="u00", groups=("hr",)))) for q in QUESTIONS}
    assert max(found.values()) == 2  # index.top_k
    for (user, model, question), reply in zip(calls, replies):
        extra, arm = reply.ragtune, arm_of[user]
        assert (extra["experiment"], extra["arm"]) == ("leave-answers", arm) and reply.id == extra["request_id"]
        assert extra["reason"].startswith(f"experiment leave-answers arm {arm}")
        if arm == "tuned":  # combined with adapter t, one chunk (top_k: 1), the concise prompt
            assert (extra["mode"], extra["adapter"], len(extra["sources"])) == ("combined", "t-v0001", 1)
        else:
            assert (extra["mode"], extra["adapter"], len(extra["sources"])) == ("rag", None, found[question])
    explicit = ask(url, "u00", "rag")  # an explicit mode beats the arm, and is not an exposure
    assert (explicit.ragtune["experiment"], explicit.ragtune["reason"]) == (None, "explicit")

    logged = exposures(project, "leave-answers")
    assert sorted(e.request_id for e in logged) == sorted(r.id for r in replies)
    assert {e.unit_id: e.arm for e in logged} == arm_of
    for e in logged:
        assert e.prompt_tokens > 0 and e.latency_s > 0 and e.question is None and e.answer is None
        assert e.mode == ("combined" if e.arm == "tuned" else "rag")

    for i, reply in enumerate(replies):
        user = calls[i][0]
        assert feedback(url, user, {"request_id": reply.id, "name": "thumbs_up", "value": i % 3 != 0}).status_code == 200
        got = feedback(url, user, {"request_id": reply.id, "name": "rating", "value": 1 + i % 5})
        assert got.status_code == 200 and got.json()["value"] == float(1 + i % 5)
    for body, status, says in (
            ({"request_id": "chatcmpl-nope", "name": "thumbs_up", "value": 1}, 404, "no experiment served request"),
            ({"request_id": explicit.id, "name": "thumbs_up", "value": 1}, 404, "nothing was written"),
            ({"request_id": replies[0].id, "name": "9lives", "value": 1}, 400, "must start with a letter"),
            (f'{{"request_id": "{replies[0].id}", "name": "rating", "value": NaN}}'.encode(), 400, "finite number"),
            ({"request_id": replies[0].id, "name": "rating", "value": "4"}, 400, "value"),
            ({"request_id": replies[0].id, "name": "rating"}, 400, "value: Field required")):
        got = feedback(url, "u00", body)
        assert got.status_code == status and says in got.json()["error"]["message"], got.text
    assert httpx.post(f"{url}/v1/feedback", json={"request_id": replies[0].id, "name": "x", "value": 1}).status_code == 401

    result = CliRunner().invoke(cli, ["ab", "report", "leave-answers", "-c", str(path), "--out", str(tmp_path / "r"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    arms = {a["name"]: a for a in report["arms"]}
    for name in ("control", "tuned"):
        units = [u for u in USERS if arm_of[u] == name]
        assert (arms[name]["units"], arms[name]["exposures"]) == (len(units), 3 * len(units))
    metrics = {m["name"]: m for m in report["metrics"]}
    assert metrics["thumbs_up"]["kind"] == "rate" and metrics["rating"]["kind"] == "mean"
    want = [1 + i % 5 for i, (u, _, _) in enumerate(calls) if arm_of[u] == "tuned"]
    assert metrics["rating"]["arms"]["tuned"]["value"] == pytest.approx(sum(want) / len(want), abs=1e-6)
    assert metrics["thumbs_up"]["vs_control"]["tuned"]["test"] == "two_proportion"
    assert 0 <= metrics["rating"]["vs_control"]["tuned"]["p_value"] <= 1
    assert report["srm"]["observed"] == {n: arms[n]["units"] for n in ("control", "tuned")}
    files = {Path(f).name for f in report["files"]}
    assert {"report.md", "report.json", "thumbs_up.png", "rating.png", "latency_s.png"} <= files
    assert (tmp_path / "r" / "rating.png").read_bytes()[:4] == b"\x89PNG"
    shown = CliRunner().invoke(cli, ["ab", "report", "leave-answers", "-c", str(path), "--out", str(tmp_path / "s")])
    assert shown.exit_code == 0 and "A/B report: leave-answers" in shown.output and "Welch" in shown.output


def test_the_end_user_unit_reads_the_request_s_user_field_and_log_text_keeps_the_text(live):
    project, url, _ = live
    cfg = project.experiments.get("by-end-user")
    for end_user in ("zed-1", "zed-2", "zed-3", "zed-4"):
        reply = ask(url, "u01", "by-end-user", user=end_user)
        assert reply.ragtune["arm"] == assign_unit(cfg, end_user).arm
    logged = exposures(project, "by-end-user")
    assert [e.unit_id for e in logged[-4:]] == ["zed-1", "zed-2", "zed-3", "zed-4"]
    assert logged[-1].question == QUESTIONS[0] and logged[-1].answer is not None  # log_text: true


def test_python_api_answers_in_the_arm_and_records_outcomes(live, tmp_path):
    project, _, _ = live
    cfg = project.experiments.get("leave-answers")
    tuned = next(u for u in USERS if assign_unit(cfg, u).arm == "tuned")
    answer = project.ask(QUESTIONS[0], user=tuned, groups=["hr"])
    assert (answer.experiment, answer.arm, answer.mode, answer.adapter) == ("leave-answers", "tuned", "combined", "t-v0001")
    assert answer.prompt.count("Answer in one short sentence, using only the company documents below.") == 1
    assert "Answer in one short sentence" not in project.ask(QUESTIONS[0], user=tuned, groups=["hr"], mode="combined").prompt
    tokens = project.generator.tokenizer(answer.prompt, add_special_tokens=False)["input_ids"]
    assert exposures(project, "leave-answers")[-1].prompt_tokens == len(tokens)
    project.record_outcome(answer.request_id, "resolved", True)
    with pytest.raises(UnknownRequestError):
        project.record_outcome("ask-missing", "resolved", True)
    anonymous = project.ask(QUESTIONS[0])  # anonymous is no unit: normal routing
    assert anonymous.experiment is None and anonymous.reason == "router.default_mode" and anonymous.request_id
    report, paths = project.ab_report("leave-answers", folder=tmp_path / "rep")
    assert any(m.name == "resolved" for m in report.metrics) and paths[0].exists()


def test_precedence_explicit_then_arm_then_group_then_default():
    cfg = RouterConfig(groups={"support": "combined"}, default_mode="rag")
    arm = assign_unit(framework.load_config_dict({"experiments": [LEAVE]}).experiments[0], "u00")
    support = Principal(user="u00", groups=("support",))
    assert choose_mode("prompt_only", support, cfg, arm=arm) == ("prompt_only", "explicit")
    assert choose_mode(None, support, cfg, arm=arm) == (arm.mode, f"experiment leave-answers arm {arm.arm}")
    assert choose_mode(None, support, cfg) == ("combined", "group support")
    assert choose_mode(None, Principal(user="u00"), cfg) == ("rag", "router.default_mode")


def test_a_config_change_alone_stops_the_experiment_and_arms_stay_sticky(two_audiences_config, tmp_path):
    on = write_config(two_audiences_config, tmp_path, [LEAVE])
    first = framework.load(on, show_progress=False)
    before = {u: first.ask(QUESTIONS[0], user=u, groups=["hr"]).arm for u in USERS[:6]}
    first.close()
    off = write_config(two_audiences_config, tmp_path, [{**LEAVE, "enabled": False}], name="off.yaml")
    second = framework.load(off, show_progress=False)
    tokens = TokenTable.from_config(second.config.serve.tokens, environ={})
    with serving(create_app(second.router, second.config.serve, tokens=tokens, experiments=second.experiments)) as url:
        named = ask(url, "u00", "leave-answers").ragtune
        plain = ask(url, "u01", "ragtune").ragtune
    assert named["experiment"] is None and named["mode"] == "rag"
    assert named["reason"] == "router.default_mode; experiment leave-answers not applied: disabled"
    assert (plain["experiment"], plain["reason"]) == (None, "router.default_mode")
    assert len(exposures(second, "leave-answers")) == 6  # only the six answers given while it ran
    second.close()
    again = framework.load(on, show_progress=False)  # re-enabled in a new process: the same arms
    assert {u: again.ask(QUESTIONS[0], user=u, groups=["hr"]).arm for u in USERS[:6]} == before
    again.close()


def test_an_arm_whose_adapter_is_not_served_fails_clearly_at_start_and_when_served(two_audiences_config, tmp_path):
    ghost = {**LEAVE, "arms": [LEAVE["arms"][0], {**LEAVE["arms"][1], "adapter": "t@v0009"}]}
    path = write_config(two_audiences_config, tmp_path, [ghost])
    project = framework.load(path, show_progress=False)
    with pytest.raises(AdapterError, match=r"experiments.0.arms.1.adapter \(leave-answers arm tuned\): .*v0009"):
        check_arms(project.experiments.configs, project.adapters, serve="promoted")
    started = CliRunner().invoke(cli, ["serve", "-c", str(path)])
    assert started.exit_code == 3 and "experiments.0.arms.1.adapter" in started.output
    tuned = next(u for u in USERS if assign_unit(project.experiments.get("leave-answers"), u).arm == "tuned")
    with pytest.raises(AdapterError, match="experiment leave-answers arm tuned names adapter 't@v0009'"):
        project.ask(QUESTIONS[0], user=tuned, groups=["hr"])
    project.close()


def test_an_auto_arm_keeps_the_experiment_in_its_reason_and_a_template_arm_fills_its_template(two_audiences_config,
                                                                                                  tmp_path):
    mixed = {"name": "mixed", "salt": "m", "arms": [
        {"name": "decide", "mode": "auto", "adapter": "t"},
        {"name": "brief", "mode": "prompt_only", "prompt": "Briefly, from memory: {question}"}]}
    project = framework.load(write_config(two_audiences_config, tmp_path, [mixed]), show_progress=False)
    cfg = project.experiments.get("mixed")
    users = {assign_unit(cfg, u).arm: u for u in USERS}
    decided = project.ask(QUESTIONS[0], user=users["decide"], groups=["hr"])
    assert decided.reason.startswith("experiment mixed arm decide; auto: ")
    # Adapter t learned the public handbook only, not the hr-only expense policy this question retrieves.
    assert decided.mode == "rag" and "adapter t-v0001 does not know" in decided.reason
    brief = project.ask(QUESTIONS[0], user=users["brief"], groups=["hr"])
    assert (brief.mode, brief.adapter) == ("prompt_only", None)
    assert f"Briefly, from memory: {QUESTIONS[0]}" in brief.prompt
    assert [e.arm for e in exposures(project, "mixed")] == ["decide", "brief"]
    project.close()
