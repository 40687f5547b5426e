"""Optional second-stage reranking of retrieved chunks.

A cross-encoder reads the question and each candidate passage together, which ranks
better than comparing two separately made vectors, at the cost of one model call per
candidate. None ships offline, so reranking is off unless `index.reranker` names a
local cross-encoder folder (sentence-transformers format), or a `Reranker` is passed to
`Project(reranker=...)`. Reranked sources keep their cosine `score` (the scale `auto`
mode and confidence read) and carry the reranker's own score in `rerank_score`.

Example:
    >>> class ShortestFirst:
    ...     def rerank(self, question, sources):
    ...         return sorted(sources, key=lambda s: len(s.text))
    >>> isinstance(ShortestFirst(), Reranker)
    True
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol, runtime_checkable

from framework.records import Source


@runtime_checkable
class Reranker(Protocol):
    def rerank(self, question: str, sources: list[Source]) -> list[Source]:
        """Return the sources best first (any subset; the retriever keeps the top k)."""
        ...


class CrossEncoderReranker:
    """A local sentence-transformers cross-encoder; nothing is downloaded."""

    def __init__(self, path: str | Path, *, batch_size: int = 32, device: str = "cpu") -> None:
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"index.reranker: {path} is not a local model folder (no config.json); give the path of a "
                "sentence-transformers cross-encoder, or remove the key to turn reranking off")
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(str(path), local_files_only=True, device=device)
        self.device = device
        self.batch_size = batch_size
        self.name = path.name

    def rerank(self, question: str, sources: list[Source]) -> list[Source]:
        if not sources:
            return []
        scores = self.model.predict([(question, s.text) for s in sources], batch_size=self.batch_size,
                                    show_progress_bar=False, convert_to_numpy=True)
        ranked = sorted(zip(sources, scores.reshape(len(sources), -1)[:, -1].tolist()), key=lambda p: -p[1])
        return [dataclasses.replace(s, rerank_score=round(float(score), 4)) for s, score in ranked]
