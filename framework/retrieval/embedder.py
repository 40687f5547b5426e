"""Embedders: text to unit vectors, in batches.

Three implementations of the `Embedder` protocol ship: the sentence-transformers model
named in config (the bundled all-MiniLM-L6-v2 by default), a deterministic hashing
embedder that needs no model at all (for tests, CI and smoke runs), and an
OpenAI-compatible embedding server (`embedder: openai`, framework.retrieval.remote_embedder).

Example:
    >>> emb = HashingEmbedder(dim=64)
    >>> len(emb.embed(["hello world"])[0])
    64
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from pathlib import Path

import numpy as np

from framework.ingest.protocols import Embedder

log = logging.getLogger(__name__)

__all__ = ["Embedder", "HashingEmbedder", "SentenceTransformerEmbedder", "build_embedder", "embedder_from_config"]

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Bag of hashed words and word bigrams: no model, same vectors on every machine."""

    def __init__(self, *, dim: int = 256, max_tokens: int = 256) -> None:
        self.dim = dim
        self.max_tokens = max_tokens
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> list[str]:
        words = [w.lower() for w in _WORD.findall(text)]
        return words + [f"{a} {b}" for a, b in zip(words, words[1:])]

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in self._features(text)[: 2 * self.max_tokens]:
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)

    def tokenize(self, text: str) -> list:
        return _WORD.findall(text)


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, in bf16 where the CPU runs it fast."""

    def __init__(self, path: Path, *, dtype=None, batch_size: int = 64, device: str = "cpu") -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.device = device
        if dtype is not None and dtype != torch.float32:
            self.model.to(dtype)
        self.batch_size = batch_size
        self.max_tokens = int(self.model.max_seq_length or 256)
        self.name = Path(path).name
        # Chunking counts tokens of whole documents with a copy of the tokenizer whose length
        # limit is lifted (no "longer than max length" warning); the model's own tokenizer keeps
        # its limit, so long texts are truncated when embedded rather than crashing the model.
        self._tokenizer = copy.deepcopy(self.model.tokenizer)
        self._tokenizer.model_max_length = 10**9

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def tokenize(self, text: str) -> list:
        return self._tokenizer.encode(text, add_special_tokens=False)


def build_embedder(spec: str, *, precision: str = "auto", batch_size: int = 64, device: str | None = None) -> Embedder:
    """Build the embedder that config's `index.embedder` names: `bundled`, `hashing` or a path, on `device`
    (framework.runtime.device; None: `auto`)."""
    if spec == "hashing" or spec.startswith("hashing:"):
        dim = int(spec.split(":", 1)[1]) if ":" in spec else 256
        return HashingEmbedder(dim=dim)
    from framework.runtime.device import default_device
    from framework.runtime.models import resolve_embedder
    from framework.runtime.precision import resolve_dtype

    device = device or default_device()
    return SentenceTransformerEmbedder(resolve_embedder(spec), dtype=resolve_dtype(precision, device),
                                       batch_size=batch_size, device=device)


def embedder_from_config(index, *, precision: str = "auto", device: str | None = None) -> Embedder:
    """The embedder of config's `index` section: an embedding server for `embedder: openai`
    (framework.retrieval.remote_embedder), else `build_embedder`."""
    if index.embedder == "openai":
        from framework.retrieval.remote_embedder import OpenAIEmbedder

        return OpenAIEmbedder(**index.endpoint.model_dump())
    return build_embedder(index.embedder, precision=precision, batch_size=index.batch_size, device=device)
