"""LlamaIndex interop: ragtune's ACL-filtered retrieval and its routed answers inside a LlamaIndex app.

- `RagtuneRetriever`: a LlamaIndex `BaseRetriever` over ragtune's retrieval (dense, lexical or
  hybrid, as configured) for one principal: it only ever returns chunks that principal may read.
- `RagtuneQueryEngine`: a LlamaIndex `BaseQueryEngine` answering through ragtune's router (mode,
  adapter, audience check, the generation worker); the Response carries the sources as nodes
  and the mode, reason and adapter in `metadata`.
- `RagtuneEmbedding`: ragtune's embedder as a LlamaIndex `BaseEmbedding`, for components that
  need one (an `EmbeddingSingleSelector`, a vector index), so nothing falls back to LlamaIndex's
  default embedding, which calls OpenAI.

An existing LlamaIndex app swaps its retriever or query engine for these in a few lines; the
principal is fixed when the object is built (one per user or request), so a LlamaIndex
component downstream cannot widen what is read. Nothing here sets LlamaIndex's global `Settings`.

Example:
    >>> project = framework.load("ragtune.yaml")                                            # doctest: +SKIP
    >>> retriever = RagtuneRetriever.from_project(project, principal=Principal(groups=("hr",)))  # doctest: +SKIP
    >>> RetrieverQueryEngine.from_args(retriever, llm=my_llm).query("How many leave days?")  # doctest: +SKIP
    >>> RagtuneQueryEngine.from_project(project, principal=Principal(groups=("hr",)), mode="combined")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.response.schema import Response
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from framework.records import Principal, Source
from framework.retrieval.embedder import Embedder
from framework.retrieval.retriever import Retriever
from framework.serving.router import Router


def to_node(source: Source) -> NodeWithScore:
    """A ragtune source as a LlamaIndex node: the chunk id as node id, citation fields as metadata."""
    metadata = {"title": source.title, "uri": source.uri, "doc_id": source.doc_id, "section": source.section,
                "page": source.page, "page_end": source.page_end}
    node = TextNode(id_=source.chunk_id, text=source.text, metadata={k: v for k, v in metadata.items() if v is not None})
    return NodeWithScore(node=node, score=source.score)


class RagtuneRetriever(BaseRetriever):
    def __init__(self, retriever: Retriever, *, principal: Principal, k: int | None = None, **kwargs: Any) -> None:
        if not isinstance(principal, Principal):
            raise TypeError("RagtuneRetriever needs a framework.records.Principal: retrieval is always ACL-filtered")
        self._retriever, self._principal, self._k = retriever, principal, k
        super().__init__(**kwargs)

    @classmethod
    def from_project(cls, project, *, principal: Principal, k: int | None = None) -> "RagtuneRetriever":
        return cls(project.retriever, principal=principal, k=k)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [to_node(s) for s in self._retriever.retrieve(query_bundle.query_str, principal=self._principal,
                                                             k=self._k)]


class RagtuneQueryEngine(BaseQueryEngine):
    def __init__(self, router: Router, *, principal: Principal, mode: str | None = None, **kwargs: Any) -> None:
        if not isinstance(principal, Principal):
            raise TypeError("RagtuneQueryEngine needs a framework.records.Principal: answers are ACL-filtered")
        self._router, self._principal, self._mode = router, principal, mode
        super().__init__(callback_manager=kwargs.get("callback_manager"))

    @classmethod
    def from_project(cls, project, *, principal: Principal, mode: str | None = None) -> "RagtuneQueryEngine":
        """`mode`: None routes as configured (group default, then router.default_mode)."""
        return cls(project.router, principal=principal, mode=mode)

    def _get_prompt_modules(self) -> dict:
        return {}

    def _query(self, query_bundle: QueryBundle) -> Response:
        answer = self._router.answer([query_bundle.query_str], principal=self._principal, mode=self._mode)[0]
        return Response(response=answer.text, source_nodes=[to_node(s) for s in answer.sources],
                        metadata={"mode": answer.mode, "reason": answer.reason, "adapter": answer.adapter,
                                  "confidence": answer.confidence, "abstained": answer.abstained,
                                  "prompt": answer.prompt})

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        # The answer waits on retrieval and the generation worker: in a thread, so the event loop keeps serving.
        return await asyncio.to_thread(self._query, query_bundle)


class RagtuneEmbedding(BaseEmbedding):
    _embedder: Embedder = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.name, **kwargs)
        self._embedder = embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(list(texts)).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
