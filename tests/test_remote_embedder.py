"""`index.embedder: openai`: a real HTTP embedding server on 127.0.0.1, batching, retries, dimension checks."""

import pytest
from conftest import project_config
from embedding_server import EmbeddingServer

from framework.config import ConfigError
from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.retrieval.embedder import HashingEmbedder
from framework.retrieval.index import IndexConfigError
from framework.retrieval.remote_embedder import EmbeddingServerError, OpenAIEmbedder, estimate_tokens, token_batches


@pytest.fixture
def server():
    with EmbeddingServer(HashingEmbedder(dim=64)) as s:
        yield s


def _endpoint(server, **extra):
    return {"embedder": "openai", "endpoint": {"base_url": server.url, "model": "hashing", "backoff_s": 0.01, **extra}}


def test_retrieval_through_the_server_equals_the_in_process_embedder(tmp_path, corpus, server):
    remote = Project(load_config_dict(project_config(tmp_path / "a", corpus, index=_endpoint(server))),
                     show_progress=False)
    local = Project(load_config_dict(project_config(tmp_path / "b", corpus, index={"embedder": "hashing:64"})),
                    show_progress=False)
    remote.ingest()
    local.ingest()
    assert remote.embedder.name == "openai:hashing" and server.batches
    for question in ("what is the meal limit per day ?", "how many days of annual leave ?", "vpn"):
        a = remote.retrieve(question, principal=Principal())
        b = local.retrieve(question, principal=Principal())
        assert [s.chunk_id for s in a] == [s.chunk_id for s in b]
        assert [s.score for s in a] == pytest.approx([s.score for s in b], abs=1e-5)


def test_batches_stay_under_the_token_and_count_limits(server):
    texts = [f"text number {i} " + "word " * (i % 7) for i in range(40)]
    emb = OpenAIEmbedder(base_url=server.url, model="hashing", max_batch_tokens=24, max_batch_texts=5, concurrency=2)
    vectors = emb.embed(texts)
    assert vectors.shape == (40, 64)
    # in the input's order, whatever order the batches finished in
    assert abs(vectors - HashingEmbedder(dim=64).embed(texts)).max() < 1e-6
    assert len(server.batches) > 40 // 5
    for batch in server.batches:
        assert len(batch) <= 5 and (len(batch) == 1 or sum(estimate_tokens(t) for t in batch) <= 24)
    assert token_batches(["a " * 100], max_tokens=10, max_texts=5) == [[0]]  # too long alone: sent alone


def test_429_and_5xx_are_retried_with_backoff(server):
    server.failures = [(503, {}), (429, {"Retry-After": "0"}), (502, {})]
    emb = OpenAIEmbedder(base_url=server.url, model="hashing", backoff_s=0.01, retries=3)
    assert emb.embed(["hello world"]).shape == (1, 64)
    assert emb.requests == 4


def test_a_server_that_keeps_failing_says_so(server):
    server.failures = [(500, {})] * 3
    emb = OpenAIEmbedder(base_url=server.url, model="hashing", backoff_s=0.0, retries=2)
    with pytest.raises(EmbeddingServerError, match="failed 3 times .HTTP 500.*index.endpoint.retries"):
        emb.embed(["x"])


def test_a_4xx_is_not_retried_and_shows_the_server_s_message(server):
    emb = OpenAIEmbedder(base_url=server.url, model="other", backoff_s=0.0)
    with pytest.raises(EmbeddingServerError, match="answered 400 .*'other' is not served"):
        emb.embed(["x"])
    assert emb.requests == 1


def test_the_api_key_comes_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("EMBED_KEY", "s3cret")
    OpenAIEmbedder(base_url=server.url, model="hashing", api_key_env="EMBED_KEY").embed(["x"])
    assert server.auth[-1] == "Bearer s3cret"
    monkeypatch.delenv("EMBED_KEY")
    with pytest.raises(EmbeddingServerError, match="EMBED_KEY is not set"):
        OpenAIEmbedder(base_url=server.url, model="hashing", api_key_env="EMBED_KEY")


def test_a_different_dimension_from_the_collection_is_a_clear_error(tmp_path, corpus, server):
    cfg = project_config(tmp_path, corpus, index=_endpoint(server))
    Project(load_config_dict(cfg), show_progress=False).ingest()
    server.embedder = HashingEmbedder(dim=32)  # the server's model changed under the same name
    project = Project(load_config_dict(cfg), show_progress=False)
    with pytest.raises(IndexConfigError, match="holds 64-dimensional vectors .* now gives 32-dimensional"):
        project.retrieve("meal limit", principal=Principal())


def test_config_needs_the_endpoint_and_only_for_openai(tmp_path, corpus):
    with pytest.raises(ConfigError, match="embedder openai needs endpoint"):
        load_config_dict(project_config(tmp_path, corpus, index={"embedder": "openai"}))
    with pytest.raises(ConfigError, match="endpoint applies only to embedder: openai"):
        load_config_dict(project_config(tmp_path, corpus, index={"embedder": "hashing",
                                                                 "endpoint": {"base_url": "http://x/v1", "model": "m"}}))
