"""framework.integrations.llama_index through LlamaIndex's own interfaces: retrieve, a LlamaIndex query
engine over ragtune's retriever, ragtune's query engine, and both as tools in LlamaIndex's router."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.llms.mock import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine, RouterQueryEngine
from llama_index.core.selectors import EmbeddingSingleSelector
from llama_index.core.tools import QueryEngineTool

from framework.integrations.llama_index import RagtuneEmbedding, RagtuneQueryEngine, RagtuneRetriever
from framework.project import Project, load_config_dict
from framework.records import Principal

HANA, SAM = Principal(user="hana", groups=("hr",)), Principal(user="sam", groups=("sales",))
HR_DOC = "hr:expenses.txt"


@pytest.fixture(scope="module")
def project(two_audiences_config):
    return Project(load_config_dict(two_audiences_config), show_progress=False)


def test_the_retriever_returns_only_what_its_principal_may_read(project):
    q = "what is the meal limit ?"
    for principal, sees_hr in ((HANA, True), (SAM, False)):
        nodes = RagtuneRetriever.from_project(project, principal=principal).retrieve(q)
        direct = project.retrieve(q, principal=principal)
        assert [(n.node.node_id, n.score) for n in nodes] == [(s.chunk_id, s.score) for s in direct]
        assert (HR_DOC in {n.node.metadata["doc_id"] for n in nodes}) == sees_hr
        assert all(n.node.metadata["uri"].startswith("file://") for n in nodes)
    with pytest.raises(TypeError, match="always ACL-filtered"):
        RagtuneRetriever(project.retriever, principal=None)


def test_the_retriever_inside_a_llama_index_query_engine(project):
    engine = RetrieverQueryEngine.from_args(RagtuneRetriever.from_project(project, principal=SAM, k=2),
                                            llm=MockLLM(max_tokens=4))
    response = engine.query("what is the meal limit ?")
    assert response.source_nodes and len(response.source_nodes) <= 2
    assert HR_DOC not in {n.node.metadata["doc_id"] for n in response.source_nodes}
    assert str(response)  # MockLLM echoes: LlamaIndex synthesized from ragtune's nodes


def test_ragtune_query_engine_answers_as_the_router_does(project):
    q = "what is the expense tool called ?"
    response = RagtuneQueryEngine.from_project(project, principal=HANA, mode="combined").query(q)
    direct = project.ask_many([q], mode="combined", principal=HANA)[0]
    assert response.response == direct.text
    assert response.metadata["mode"] == "combined" and response.metadata["adapter"] == "hr-v0001"
    assert [n.node.node_id for n in response.source_nodes] == [s.chunk_id for s in direct.sources]


def test_ragtune_query_engine_aquery_leaves_the_event_loop_free(project):
    # aquery used to run the whole answer (retrieval, the generation worker) on the event loop's thread.
    q = "what is the expense tool called ?"
    engine = RagtuneQueryEngine.from_project(project, principal=HANA, mode="combined")

    async def main():
        ticks, done = 0, asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        async def ask():
            try:
                return await engine.aquery(q)
            finally:
                done.set()

        response, _ = await asyncio.gather(ask(), ticker())
        return response, ticks

    response, ticks = asyncio.run(main())
    assert response.response == project.ask_many([q], mode="combined", principal=HANA)[0].text
    assert ticks > 10, "the event loop was blocked while the question was answered"


def test_ragtune_engines_as_tools_in_llama_index_router(project):
    tools = [QueryEngineTool.from_defaults(RagtuneQueryEngine.from_project(project, principal=HANA, mode="combined"),
                                           name="expenses", description="expense policy meal limit receipts tool"),
             QueryEngineTool.from_defaults(RagtuneQueryEngine.from_project(project, principal=HANA, mode="rag"),
                                           name="handbook", description="handbook annual leave days office open")]
    selector = EmbeddingSingleSelector.from_defaults(embed_model=RagtuneEmbedding(project.embedder))
    router = RouterQueryEngine(selector=selector, query_engine_tools=tools, llm=MockLLM())
    assert router.query("what is the meal limit ?").metadata["mode"] == "combined"
    assert router.query("how many days of annual leave ?").metadata["mode"] == "rag"
