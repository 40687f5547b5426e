"""An empty access list is read by nobody, whatever group names a caller claims.

Group names are checked where principals are built (Principal, config, the CLI), and a chunk with
an empty ACL carries no group at all, so no name can match it: not in dense (Chroma), lexical
(BM25) or hybrid retrieval, not in any mode, and not in an index written by an older ragtune
that stored the sentinel `__nobody__`.
"""

import pytest
import yaml
from conftest import HANDBOOK, project_config
from typer.testing import CliRunner

from framework.cli.main import app
from framework.config import ConfigError
from framework.project import Project, load_config_dict
from framework.records import MODES, Principal, is_group
from framework.retrieval.lexical import LexicalIndex

SECRET = "The vault combination is zebra quartz nineteen."
# Names a caller might claim to reach documents meant for nobody: sentinels, wildcards, look-alikes.
CLAIMS = ["__nobody__", "__NOBODY__", "_nobody", "nobody", "none", "null", "", " ", "*", "%", "all", "everyone",
          "public", "staff", "closed", "acl", "__public__", "nobody ", "\x00", "a,b", "x" * 200]
QUESTIONS = ["What is the vault combination?", "zebra quartz nineteen", "How many days of annual leave?"]


def test_connector_group_names_are_valid_and_reserved_names_are_not():
    for name in ("hr", "slack:general", "slack:mpdm-ana--bob-1", "slack:D01AB2C3", "eng/platform", "team@corp.com",
                 "Finance Team", "équipe", "public", "role=admin", "v1.2#beta"):
        assert is_group(name) and Principal(groups=(name,)).groups == (name,)
    for name in ("__nobody__", "_x", "", " hr", "hr ", "*", "a,b", "line\nbreak", "x" * 129, None, 7):
        with pytest.raises(ValueError, match="not a valid group name: it must start with a letter or digit"):
            Principal(groups=(name,))
    with pytest.raises(ValueError, match="tuple of group names"):
        Principal(groups="hr")


def test_config_and_cli_refuse_reserved_group_names(tmp_path, corpus):
    bad = {"sources": [{"name": "docs", "type": "files", "path": str(corpus), "acl": ["__nobody__"],
                        "acl_paths": {"hr/*": [" hr"]}}],
           "router": {"groups": {"__nobody__": "rag"}, "group_adapters": {"*": "default"}},
           "dataset": {"audience": [""]}}
    with pytest.raises(ConfigError) as err:
        load_config_dict(bad)
    for key in ("sources.0.acl.0", "sources.0.acl_paths.hr/*.0", "router.groups.__nobody__", "router.group_adapters",
                "dataset.audience.0"):
        assert key in str(err.value)
    config = tmp_path / "ragtune.yaml"
    config.write_text(yaml.safe_dump(project_config(tmp_path, corpus)))
    result = CliRunner().invoke(app, ["ask", "-c", str(config), "--group", "__nobody__", "anything?"])
    shown = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2 and "'__nobody__' is not a valid group name" in shown


@pytest.fixture(scope="module")
def projects(tmp_path_factory, tiny_model):
    """One workspace (a public and an ACL-less source, an adapter trained on it), one Project per retrieval kind."""
    tmp = tmp_path_factory.mktemp("acl")
    open_docs, closed = tmp / "open", tmp / "closed"
    open_docs.mkdir()
    closed.mkdir()
    (open_docs / "handbook.md").write_text(HANDBOOK)
    (closed / "vault.md").write_text(f"# Vault\n\n{SECRET}\nEvery employee receives 99 days of vault leave.\n")
    cfg = project_config(tmp, open_docs, tiny_model)
    cfg["sources"].append({"name": "closed", "type": "files", "path": str(closed)})  # no acl, not public
    built = {}
    for kind in ("dense", "lexical", "hybrid"):
        c = {**cfg, "index": {**cfg["index"], "retrieval": kind}}
        built[kind] = Project(load_config_dict(c), show_progress=False)
    first = built["hybrid"]
    first.ingest()
    first.synthesize()
    first.finetune(promote=True)
    return built


def _principals():
    accepted = []
    for name in CLAIMS:
        try:
            accepted.append(Principal(user="mallory", groups=(name,)))
        except ValueError:
            assert not is_group(name)
    everything = Principal(user="mallory", groups=tuple(p.groups[0] for p in accepted))
    return accepted + [everything, Principal()]


def _assert_nothing_closed(answers):
    for a in answers:
        assert not [s for s in a.sources if s.doc_id.startswith("closed:")], (a.mode, a.sources)
        assert "combination is" not in a.prompt and "vault leave" not in a.prompt


@pytest.mark.parametrize("kind", ["dense", "lexical", "hybrid"])
def test_no_principal_reads_an_empty_acl_in_any_retrieval_or_mode(projects, kind):
    project = projects[kind]
    closed_ids = {c.id for c in project.index.rows() if c.doc_id.startswith("closed:")}
    assert closed_ids and all(c.acl == () for c in project.index.rows() if c.id in closed_ids)
    principals = _principals()
    for principal in principals:
        for q in QUESTIONS:
            assert not {s.chunk_id for s in project.retrieve(q, principal=principal, k=50)} & closed_ids
    for mode in MODES:  # the principal holding every accepted name at once, and the anonymous one
        for principal in principals[-2:]:
            _assert_nothing_closed(project.ask_many(QUESTIONS, mode=mode, principal=principal))


def test_an_index_written_with_the_old_sentinel_stays_closed(projects):
    project = projects["hybrid"]
    closed = [c for c in project.index.rows() if c.doc_id.startswith("closed:")]
    got = project.index.collection.get(ids=[c.id for c in closed], include=["metadatas"])
    project.index.collection.update(ids=got["ids"], metadatas=[{**m, "acl": ["__nobody__"]} for m in got["metadatas"]])
    assert all(c.acl == () for c in project.index.rows() if c.doc_id.startswith("closed:"))
    project.retriever.refresh()
    for kind in ("dense", "lexical", "hybrid"):
        projects[kind].retriever.refresh()
        for principal in _principals():
            hits = projects[kind].retriever.retrieve_many(QUESTIONS, principal=principal, k=50)
            assert not [s for found in hits for s in found if s.doc_id.startswith("closed:")]
        _assert_nothing_closed(projects[kind].ask_many(QUESTIONS, mode="rag", principal=_principals()[-2]))
    # a BM25 index saved by an older ragtune, with the sentinel in its ACLs, matches no caller's groups either
    old = LexicalIndex.build(ids=["open", "closed"], texts=["annual leave days", "vault zebra quartz"],
                             acls=[["public"], ["__nobody__"]])
    assert old.search("vault zebra quartz", groups=("public", "__nobody__", ""), k=5) == []
