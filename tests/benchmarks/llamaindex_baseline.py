"""LlamaIndex's documented default RAG pipeline, as the baseline ragtune's benchmarks beat,
and the shared-set helpers the ingest, retrieval and answer benchmarks use.

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
from llama_index.core.constants import DEFAULT_NUM_OUTPUTS
from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback
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


class BundledLLM(CustomLLM):
    """The bundled generator behind LlamaIndex's LLM interface, used the way its defaults use an LLM:
    the model's chat template around the prompt, greedy, `num_output` (LlamaIndex's default 256)
    new tokens. Each call's generated tokens and whether the budget cut it are kept in `calls`."""

    context_window: int = 8192
    num_output: int = DEFAULT_NUM_OUTPUTS
    _tokenizer = PrivateAttr()
    _model = PrivateAttr()
    _calls: list = PrivateAttr(default_factory=list)

    def __init__(self, model_dir: Path, **kwargs) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        super().__init__(**kwargs)
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self._model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()

    @property
    def calls(self) -> list[tuple[int, bool]]:
        return self._calls

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.num_output,
                           model_name="SmolLM2-135M-Instruct")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs) -> CompletionResponse:
        import torch

        text = self._tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                   tokenize=False)
        enc = self._tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = self._model.generate(**enc, max_new_tokens=self.num_output, do_sample=False,
                                       pad_token_id=self._tokenizer.eos_token_id)
        new = out[0, enc["input_ids"].shape[1]:]
        ended = bool((new == self._tokenizer.eos_token_id).any())
        self._calls.append((int(len(new) - ended), not ended and len(new) >= self.num_output))
        return CompletionResponse(text=self._tokenizer.decode(new, skip_special_tokens=True).strip())

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs):
        yield self.complete(prompt, formatted=formatted, **kwargs)
