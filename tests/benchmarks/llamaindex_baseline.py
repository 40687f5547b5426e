"""LlamaIndex's documented default RAG pipeline, as the baseline ragtune's benchmarks beat.

`SimpleDirectoryReader` -> `VectorStoreIndex.from_documents` (default SentenceSplitter)
over a `ChromaVectorStore`, retrieved with `as_retriever(similarity_top_k=...)`. The
embedding model is the very embedder ragtune uses (same weights, same precision), passed
explicitly rather than through global settings, so the comparison is of the pipelines.
"""

from __future__ import annotations

from pathlib import Path

from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr


class SameEmbedder(BaseEmbedding):
    """ragtune's embedder seen through LlamaIndex's embedding interface."""

    _embedder = PrivateAttr()

    def __init__(self, embedder, batch_size: int = 64) -> None:
        super().__init__(model_name=embedder.name, embed_batch_size=batch_size)
        self._embedder = embedder

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(list(texts)).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)


def build_default_index(folder: Path, embedder, chroma_path: Path) -> VectorStoreIndex:
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(path=str(chroma_path), settings=ChromaSettings(anonymized_telemetry=False))
    store = ChromaVectorStore(chroma_collection=client.get_or_create_collection("baseline"))
    documents = SimpleDirectoryReader(str(folder), recursive=True).load_data()
    return VectorStoreIndex.from_documents(documents, storage_context=StorageContext.from_defaults(vector_store=store),
                                           embed_model=SameEmbedder(embedder))
