import pytest
from conftest import project_config

from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.retrieval.lexical import LexicalIndex, rrf


def _project(tmp_path, corpus, **index):
    cfg = project_config(tmp_path, corpus, index=index) if index else project_config(tmp_path, corpus)
    return Project(load_config_dict(cfg), show_progress=False)


def test_rrf_rewards_agreement_and_respects_weights():
    assert rrf([["a", "b"], ["b", "c"]], [1.0, 1.0]) == ["b", "a", "c"]
    assert rrf([["a"], ["b"]], [1.0, 2.0]) == ["b", "a"]
    assert rrf([["a"], ["b"]], [1.0, 0.0])[0] == "a"


def test_lexical_search_applies_acl_inside_the_ranking():
    lex = LexicalIndex.build(ids=["a", "b", "c"], texts=["meal limit per day", "meal limit secret", "parking"],
                             acls=[["public"], ["hr"], ["__nobody__"]])
    assert [i for i, _ in lex.search("meal limit", groups=("public",), k=5)] == ["a"]
    assert {i for i, _ in lex.search("meal limit", groups=("public", "hr"), k=5)} == {"a", "b"}
    assert lex.search("parking", groups=("public", "hr"), k=5) == []


@pytest.mark.parametrize("mode", ["hybrid", "lexical", "dense"])
def test_every_retrieval_mode_finds_exact_names(tmp_path, corpus, mode):
    project = _project(tmp_path, corpus, retrieval=mode)
    project.ingest()
    hits = project.retrieve("Tunnelwise", principal=Principal())
    assert hits and hits[0].doc_id == "docs:policies/security.html"
    assert all(-1.0 <= h.score <= 1.0 for h in hits)


def test_lexical_index_never_returns_deleted_or_forbidden_chunks(tmp_path, corpus):
    sources = [{"name": "docs", "type": "files", "path": str(corpus), "public": True}]
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "pay.md").write_text("Zanzibar bonus pool is 12 percent of salary.")
    sources.append({"name": "hr", "type": "files", "path": str(secret), "acl": ["hr"]})
    cfg = project_config(tmp_path, corpus, index={"retrieval": "lexical"})
    cfg["sources"] = sources
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    assert project.retrieve("Zanzibar bonus", principal=Principal(groups=("sales",))) == []
    assert project.retrieve("Zanzibar bonus", principal=Principal(groups=("hr",)))[0].doc_id == "hr:pay.md"
    (corpus / "policies" / "security.html").unlink()
    project.ingest()
    hits = project.retrieve("Tunnelwise VPN client", principal=Principal(groups=("hr",)))
    assert all(h.doc_id != "docs:policies/security.html" for h in hits)


def test_lexical_index_resyncs_after_an_ingest_killed_before_rebuilding_it(tmp_path, corpus):
    project = _project(tmp_path, corpus)
    project.ingest()
    victim = project.retrieve("Tunnelwise", principal=Principal())[0].chunk_id
    project.index.delete([victim])  # the vector index moved on, the BM25 files did not
    fresh = _project(tmp_path, corpus)
    assert victim not in {h.chunk_id for h in fresh.retrieve("Tunnelwise", principal=Principal(), k=10)}
    assert victim not in fresh.retriever.lexical.ids
    assert LexicalIndex.load(tmp_path / "ws" / "lexical" / "ragtune").ids == fresh.retriever.lexical.ids


def test_retrieval_refuses_without_principal(tmp_path, corpus):
    project = _project(tmp_path, corpus)
    project.ingest()
    with pytest.raises(PermissionError):
        project.retrieve("x", principal=None)


def test_retrieval_metrics():
    from framework.evaluation.gold import retrieval_metrics
    from framework.records import Source

    def src(doc):
        return Source(chunk_id="c", doc_id=f"docs:{doc}", title="", uri=f"file:///x/{doc}", score=0.5, text="")

    m = retrieval_metrics([[src("a.md"), src("b.md")], [src("c.md")]], ["b.md", "z.md"], ks=(1, 2))
    assert m == {"questions": 2, "hit@1": 0.0, "hit@2": 0.5, "recall@1": 0.0, "recall@2": 0.5, "mrr": 0.25}
    assert retrieval_metrics([[src("a.md")]], [["z.md", "a.md"]], ks=(1,))["hit@1"] == 1.0


def test_cli_retrieval_only_eval(tmp_path, corpus):
    import json

    import yaml
    from typer.testing import CliRunner

    from framework.cli.main import app

    cfg = tmp_path / "ragtune.yaml"
    cfg.write_text(yaml.safe_dump(project_config(tmp_path, corpus)))
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "What is the VPN client called?", "answer": "Tunnelwise",
                                     "document": "security.html"}) + "\n")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "-c", str(cfg), "--json"]).exit_code == 0
    result = runner.invoke(app, ["eval", "--retrieval-only", "-q", str(questions), "-c", str(cfg), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["hit@1"] == 1.0 and metrics["mrr"] == 1.0 and metrics["retrieval"] == "hybrid"


def test_lexical_search_stems_and_forgives_typos():
    from framework.retrieval.lexical import LexicalIndex

    lex = LexicalIndex.build(ids=["hearing", "dental"], texts=["Hearing aids are covered once a year.",
                                                                "Dental cleanings are covered twice."],
                             acls=[["public"], ["public"]])
    assert lex.search("hearin aid", groups=("public",), k=1)[0][0] == "hearing"  # typo + plural
    assert lex.search("hearin", groups=("public",), k=1, typo_tolerant=False) == []
    assert lex.search("cleaning", groups=("public",), k=1)[0][0] == "dental"  # stem


def test_lexical_index_from_another_tokenizer_is_rebuilt(tmp_path):
    import json

    from framework.retrieval.lexical import LexicalIndex

    LexicalIndex.build(ids=["a"], texts=["leave days"], acls=[["public"]]).save(tmp_path / "lex")
    assert LexicalIndex.load(tmp_path / "lex") is not None
    meta = tmp_path / "lex" / "chunks.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "tokenizer": "old"}))
    assert LexicalIndex.load(tmp_path / "lex") is None


def test_dense_search_returns_the_nearest_readable_chunks_for_wide_and_narrow_readers(tmp_path):
    # Most chunks are readable by staff (answered from the unfiltered neighbours), two by hr
    # only (too few among them: the filtered query runs). Both must equal brute force.
    import numpy as np

    from framework.records import Chunk
    from framework.retrieval.index import ChromaIndex

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((120, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    acls = [("hr",) if i in (7, 93) else ("staff",) for i in range(120)]
    chunks = [Chunk(id=f"c{i:03d}", doc_id=f"d{i}", position=0, text=f"t{i}", title="", uri="", source="s",
                    doc_hash="h", acl=acls[i]) for i in range(120)]
    index = ChromaIndex.open(path=str(tmp_path / "chroma"), collection="probe", embedder_name="random-16")
    index.upsert(chunks, vectors)
    query = rng.standard_normal(16).astype(np.float32)
    query /= np.linalg.norm(query)
    order = np.argsort(-(vectors @ query))
    for groups, k in ((("staff",), 5), (("hr",), 3), (("nobody",), 3)):
        expected = [f"c{i:03d}" for i in order if set(acls[i]) & set(groups)][:k]
        got = [s.chunk_id for s in index.search(query, principal=Principal(groups=groups), k=k)]
        assert got == expected, groups
