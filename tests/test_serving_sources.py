"""Over HTTP a source names its document id and its path inside the source, never a path on the server:
`uri` is kept for http(s) documents only (the Python API's Answer keeps full URIs)."""

from __future__ import annotations

import httpx
import pytest
from asgi_server import serving

from framework.config import ServeConfig, TokenConfig
from framework.project import Project, load_config_dict
from framework.records import Evidence, Principal, Source
from framework.serving.auth import TokenTable
from framework.serving.citations import evidence_view, location, source_view
from framework.serving.server import create_app

Q = "what is the meal limit ?"


@pytest.fixture(scope="module")
def live(two_audiences_config):
    # extractive answers always have evidence (the tiny model's generated words rarely match a source sentence)
    project = Project(load_config_dict(two_audiences_config, ["generator.answer_style=extractive"]),
                      show_progress=False)
    token = TokenConfig(user="hana", groups=["hr"], token_env="TOK")
    app = create_app(project.router, ServeConfig(tokens=[token]),
                     tokens=TokenTable.from_config([token], environ={"TOK": "t"}))
    with serving(app) as url:
        yield project, url
    project.close()


@pytest.mark.parametrize("stream", [False, True])
def test_http_sources_and_evidence_carry_no_server_path(live, stream):
    project, url = live
    reply = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": "Bearer t"}, timeout=60,
                       json={"model": "rag", "stream": stream, "messages": [{"role": "user", "content": Q}]})
    assert reply.status_code == 200
    direct = project.ask_many([Q], mode="rag", principal=Principal(user="hana", groups=("hr",)))[0]
    folders = {str(project.config.sources[0].path), str(project.config.sources[1].path)}
    assert direct.sources and all(s.uri.startswith("file://") for s in direct.sources)  # the Python API keeps them
    assert "file:" not in reply.text and not any(folder in reply.text for folder in folders)
    body = reply.json() if not stream else next(
        httpx.Response(200, content=line[6:]).json() for line in reply.text.splitlines()
        if line.startswith("data: {") and '"ragtune"' in line)
    extra = body["ragtune"]
    assert [(s["doc_id"], s["source"], s["path"], s["uri"]) for s in extra["sources"]] == [
        (s.doc_id, s.doc_id.split(":")[0], s.doc_id.split(":", 1)[1], None) for s in direct.sources]
    assert {s["path"] for s in extra["sources"]} <= {"handbook.md", "expenses.txt"}
    assert extra["evidence"] and all(e["uri"] is None and e["path"] in ("handbook.md", "expenses.txt")
                                     for e in extra["evidence"])


def test_only_http_and_https_uris_go_over_the_wire():
    web = Source(chunk_id="c", doc_id="intranet:https://intra.example.com/leave", title="Leave",
                 uri="https://intra.example.com/leave", score=0.5, text="t")
    assert source_view(web)["uri"] == "https://intra.example.com/leave"
    assert location("HTTP://wiki.example.com/x", "wiki:42") == {"uri": "HTTP://wiki.example.com/x", "source": "wiki",
                                                                "path": "42"}
    for uri in ("file:///srv/ragtune/hr/pay.md", "file:///srv/export.zip#pay.md", "slack://general/p1",
                "postgresql://db.internal/hr#pay/7", "/srv/ragtune/pay.md"):
        assert location(uri, "hr:pay.md") == {"uri": None, "source": "hr", "path": "pay.md"}
    e = Evidence(text="x", chunk_id="c", doc_id="git:docs/a.md", title="A", uri="file:///repo/docs/a.md")
    assert (evidence_view(e)["path"], evidence_view(e)["uri"]) == ("docs/a.md", None)
