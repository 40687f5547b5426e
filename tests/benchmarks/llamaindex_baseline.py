"""LlamaIndex's documented default RAG pipeline, as the baseline ragtune's benchmarks beat,
and the shared-set helpers the ingest and retrieval benchmarks both use.

`SimpleDirectoryReader` -> `VectorStoreIndex.from_documents` (default SentenceSplitter)
over a `ChromaVectorStore`, retrieved with `as_retriever(similarity_top_k=...)`. The
embedding model is the very embedder ragtune uses (same weights, same precision), passed
explicitly rather than through global settings, so the comparison is of the pipelines.
"""

from __future__ import annotations

import hashlib
import json
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


def build_default_index(folder: Path, embed_model: BaseEmbedding, chroma_path: Path):
    """Run the documented default pipeline over `folder`; returns (index, its Chroma collection)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(path=str(chroma_path), settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_or_create_collection("baseline")
    documents = SimpleDirectoryReader(str(folder), recursive=True).load_data()
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection)),
        embed_model=embed_model)
    return index, collection


def page_file_name(link: str) -> str:
    """The file an anthropic_docs page is written to: stable, and the gold links map onto it."""
    return hashlib.sha1(link.encode()).hexdigest()[:12] + ".md"


def write_anthropic_pages(data: Path, folder: Path) -> Path:
    """anthropic_docs' pre-chunked pages as one Markdown file each (heading, then text)."""
    folder.mkdir(parents=True, exist_ok=True)
    for page in json.loads((data / "anthropic_docs.json").read_text()):
        (folder / page_file_name(page["chunk_link"])).write_text(f"# {page['chunk_heading']}\n\n{page['text']}")
    return folder
