"""Project: the Python API over one ragtune.yaml and its workspace.

Components (embedder, index, generator) are built on first use and kept, so an app
that only asks questions never loads what ingest needs, and the base model is loaded
once for all four modes.

Example:
    >>> import framework
    >>> project = framework.load("ragtune.yaml")          # doctest: +SKIP
    >>> project.ingest()                                  # doctest: +SKIP
    >>> project.ask("How many leave days?", mode="rag")   # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from pathlib import Path
from typing import Sequence

import torch

from framework import dataset as ds
from framework import prompts
from framework.adapters import AdapterRegistry, base_fingerprint, check_base
from framework.config import Config, load_config
from framework.embedder import Embedder, build_embedder
from framework.evaluation import load_questions, retrieval_metrics, score
from framework.index import ChromaIndex
from framework.ingest import IngestReport, ingest, workspace_lock
from framework.ledger import Ledger
from framework.precision import resolve_dtype
from framework.progress import track
from framework.records import Answer, Principal, Source
from framework.retrieval import Retriever
from framework.router import MODE_TABLE, check_mode, choose_mode, resolve_auto

log = logging.getLogger(__name__)


class Project:
    def __init__(self, config: Config, *, show_progress: bool = True, embedder: Embedder | None = None) -> None:
        self.config = config
        self.workspace = config.workspace_path()
        self.show_progress = show_progress
        self._embedder = embedder

    # -- components -------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            c = self.config
            self._embedder = build_embedder(c.index.embedder, precision=c.precision, batch_size=c.index.batch_size)
        return self._embedder

    @functools.cached_property
    def index(self) -> ChromaIndex:
        idx = self.config.index
        path = idx.path or str(self.workspace / "chroma")
        return ChromaIndex.open(path=None if idx.url else path, url=idx.url, collection=idx.collection,
                                embedder_name=self.embedder.name)

    @functools.cached_property
    def retriever(self) -> Retriever:
        lexical_dir = self.workspace / "lexical" / self.config.index.collection
        return Retriever(self.index, self.embedder, lexical_dir, self.config.index)

    @functools.cached_property
    def base_model_dir(self) -> Path:
        from framework.models import resolve_generator

        return resolve_generator(self.config.generator.model, workspace=self.workspace)

    @functools.cached_property
    def generator(self):
        from framework.generator import HFGenerator

        g = self.config.generator
        return HFGenerator(self.base_model_dir, dtype=resolve_dtype(self.config.precision), batch_size=g.batch_size,
                           repetition_penalty=g.repetition_penalty)

    @property
    def adapters(self) -> AdapterRegistry:
        return AdapterRegistry(self.workspace / "adapters")

    def dataset_dir(self) -> Path:
        return self.workspace / "datasets" / self.config.dataset.name

    # -- ingest ----------------------------------------------------------------------------------
    def ingest(self) -> IngestReport:
        """Bring the index up to date with every configured source."""
        from connectors import build_connector

        if not self.config.sources:
            raise ValueError("config has no sources; add one under `sources:` (see docs/configuration.md)")
        with workspace_lock(self.workspace):
            ledger = Ledger(self.workspace / "ledger.sqlite")
            try:
                c = self.config.index
                report = ingest([build_connector(s) for s in self.config.sources], embedder=self.embedder,
                                index=self.index, ledger=ledger, chunk_size=c.chunk_size,
                                chunk_overlap=c.chunk_overlap, batch_size=c.batch_size,
                                parse_workers=self.config.ingest.parse_workers,
                                parse_timeout_s=self.config.ingest.parse_timeout_s,
                                show_progress=self.show_progress)
            finally:
                ledger.close()
            if self.config.index.retrieval != "dense":
                start = time.perf_counter()
                self.retriever.refresh()
                self.retriever.lexical  # noqa: B018 - rebuild now, inside the lock, not on the first question
                report.seconds["lexical"] += time.perf_counter() - start
                report.seconds["total"] += time.perf_counter() - start
            return report

    # -- retrieval ---------------------------------------------------------------------------------
    def retrieve(self, question: str, *, principal: Principal, k: int | None = None) -> list[Source]:
        """The top-k chunks the principal may read (dense, lexical or hybrid, as configured)."""
        return self.retriever.retrieve(question, principal=principal, k=k)

    # -- synthesis -------------------------------------------------------------------------------
    def synthesize(self) -> dict:
        """Generate, filter, split and write the Q/A finetuning set; returns its card."""
        from framework.synth import generate_pairs

        cfg = self.config.dataset
        chunks = self.index.rows()
        if not chunks:
            raise ValueError("the index is empty; run `ragtune ingest` first")
        eligible = [c for c in chunks if ds.readable_by_audience(c["acl"], cfg.audience)]
        pairs, unparseable = generate_pairs(eligible, cfg, lambda: self.generator, show_progress=self.show_progress)
        kept, dropped = ds.filter_pairs(pairs, cfg)
        if unparseable:
            dropped["unparseable_reply"] += unparseable
        train_pairs, eval_pairs = ds.split_pairs(kept, cfg.eval_fraction, cfg.seed)
        ds.check_size(len(train_pairs), dropped, len(pairs), cfg.min_examples)
        audience = Principal(user="dataset", groups=tuple(cfg.audience))
        eligible_ids = {c["id"] for c in eligible}

        def retrieve(q: str, k: int) -> list[Source]:
            return [s for s in self.retrieve(q, principal=audience, k=k) if s.chunk_id in eligible_ids]

        rng = random.Random(cfg.seed)
        train = ds.format_examples(train_pairs, generator=cfg.generator, raft=cfg.raft, retrieve=retrieve, rng=rng)
        evals = ds.format_examples(eval_pairs, generator=cfg.generator, raft=cfg.raft.model_copy(
            update={"fraction": 0.0}), retrieve=retrieve, rng=rng)
        card = ds.build_card(cfg, chunks=len(chunks), eligible=len(eligible), generated=len(pairs) + unparseable,
                             dropped=dropped, kept=kept, train=train, evals=evals)
        return ds.write_dataset(self.dataset_dir(), train, evals, card)

    # -- finetuning ------------------------------------------------------------------------------
    def finetune(self) -> dict:
        """Train a LoRA adapter on the dataset; returns the new adapter's manifest."""
        from datetime import datetime, timezone

        from framework.finetune import train_lora

        folder = self.dataset_dir()
        if not (folder / "card.json").is_file():
            raise FileNotFoundError(f"no dataset at {folder}; run `ragtune synth` first")
        card = json.loads((folder / "card.json").read_text())
        train = [json.loads(x) for x in (folder / "train.jsonl").read_text().splitlines() if x.strip()]
        evals = [json.loads(x) for x in (folder / "eval.jsonl").read_text().splitlines() if x.strip()]
        cfg = self.config.finetune
        bf16 = resolve_dtype(self.config.precision) == torch.bfloat16
        out = self.adapters.next_version_dir(cfg.adapter)
        metrics = train_lora(self.base_model_dir, train, evals, cfg, out, bf16=bf16, show_progress=self.show_progress)
        manifest = {
            "name": cfg.adapter,
            "version": out.name,
            "base_model": self.config.generator.model,
            "base_fingerprint": base_fingerprint(self.base_model_dir),
            "dataset": {"name": card["name"], "hash": card["hash"], "examples": card["split"]},
            "documents": card["documents"],
            "audience": card["audience"],
            "hyperparameters": cfg.model_dump(),
            "precision": "bf16" if bf16 else "fp32",
            "metrics": metrics,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return manifest

    # -- answering -------------------------------------------------------------------------------
    def _adapter_key(self, principal: Principal) -> str:
        """Load the router's adapter (latest version) once; checks its base and its audience."""
        ref = self.adapters.require(self.config.router.adapter)
        if not _in_audience(ref, principal):
            audience = sorted(ref.manifest["audience"])
            raise PermissionError(
                f"adapter {ref.key} learned documents restricted to {audience}; user {principal.user!r} "
                f"(groups {list(principal.groups)}) is not in that audience. Use mode rag or prompt_only, or an "
                "adapter trained for this user's groups."
            )
        if self.generator.has_adapter(ref.key):
            return ref.key
        check_base(ref, self.base_model_dir)
        self.generator.load_adapter(ref.key, ref.path)
        return ref.key

    def ask(self, question: str, *, mode: str | None = None, user: str = "anonymous",
            groups: Sequence[str] = ()) -> Answer:
        """Answer one question in the routed mode; the Answer carries prompt, sources and timing."""
        return self.ask_many([question], mode=mode, principal=Principal(user=user, groups=tuple(groups)))[0]

    def ask_many(self, questions: Sequence[str], *, mode: str | None = None,
                 principal: Principal = Principal()) -> list[Answer]:
        """Answer several questions in one batch of generation (same mode for all)."""
        if not all(isinstance(q, str) and q.strip() for q in questions):
            raise ValueError("every question must be a non-empty string")
        requested, reason = choose_mode(mode, principal, self.config.router)
        start = time.perf_counter()
        plans = [self._plan(q, requested, reason, principal) for q in questions]
        texts: list[str] = [""] * len(plans)
        by_adapter: dict[str | None, list[int]] = {}
        for i, p in enumerate(plans):
            by_adapter.setdefault(p["adapter"], []).append(i)
        for adapter, idx in by_adapter.items():
            outs = self.generator.generate([plans[i]["conversation"] for i in idx], adapter=adapter,
                                           max_new_tokens=self.config.generator.max_new_tokens)
            for i, text in zip(idx, outs):
                texts[i] = text
        per_question = (time.perf_counter() - start) / max(1, len(questions))
        return [Answer(text=t, question=q, mode=p["mode"], prompt=self.generator.render(p["conversation"]),
                       sources=tuple(p["sources"]), adapter=p["adapter"], latency_s=per_question,
                       reason=p["reason"]) for q, p, t in zip(questions, plans, texts)]

    def _plan(self, question: str, mode: str, reason: str, principal: Principal) -> dict:
        sources: list[Source] = []
        retrieved = mode == "auto"
        if retrieved:
            sources = self.retrieve(question, principal=principal)
            latest = self.adapters.latest(self.config.router.adapter)
            has_adapter = latest is not None and _in_audience(latest, principal)
            mode, reason = resolve_auto(sources[0].score if sources else None, has_adapter,
                                        self.config.router.auto_min_score)
        retrieve, use_adapter = MODE_TABLE[check_mode(mode)]
        if retrieve and not retrieved:
            sources = self.retrieve(question, principal=principal)
        if not retrieve:
            sources = []
        adapter = self._adapter_key(principal) if use_adapter else None
        conversation = prompts.with_context(question, sources) if retrieve else prompts.closed_book(question)
        return {"mode": mode, "reason": reason, "sources": sources, "adapter": adapter, "conversation": conversation}

    # -- evaluation ------------------------------------------------------------------------------
    def _question_rows(self, questions: Path | list[dict] | None) -> list[dict]:
        """A question file, a list of rows, or (None) the dataset's eval split."""
        if questions is None:
            questions = self.dataset_dir() / "eval.jsonl"
            if not questions.is_file():
                raise FileNotFoundError(f"no eval split at {questions}; run `ragtune synth` or pass --questions")
        return load_questions(questions) if isinstance(questions, (str, Path)) else list(questions)

    def evaluate(self, questions: Path | list[dict] | None = None, *,
                 modes: Sequence[str] = ("prompt_only", "rag", "finetuned", "combined"),
                 principal: Principal = Principal()) -> dict:
        """Score each mode on the same questions; default questions: the dataset's eval split."""
        rows = self._question_rows(questions)
        results: dict = {}
        for mode in track(list(modes), f"evaluate {len(rows)} questions", enabled=self.show_progress):
            start = time.perf_counter()
            answers = self.ask_many([r["question"] for r in rows], mode=mode, principal=principal)
            results[mode] = {**score(answers, rows, time.perf_counter() - start),
                             "answers": [a.to_dict() for a in answers]}
        return results

    def evaluate_retrieval(self, questions: Path | list[dict] | None = None, *, ks: tuple[int, ...] = (1, 3, 5, 10),
                           principal: Principal = Principal()) -> dict:
        """hit@k and MRR of the configured retrieval against each question's gold document, no generation."""
        rows = [r for r in self._question_rows(questions) if _gold_document(r)]
        if not rows:
            raise ValueError("no question names its gold document ('document' or 'doc_id'); nothing to score")
        start = time.perf_counter()
        retrieved = [self.retrieve(r["question"], principal=principal, k=max(ks)) for r in rows]
        seconds = time.perf_counter() - start
        metrics = retrieval_metrics(retrieved, [_gold_document(r) for r in rows], ks)
        return {**metrics, "retrieval": self.config.index.retrieval, "ms_per_query": round(1000 * seconds / len(rows), 2)}


def _in_audience(ref, principal: Principal) -> bool:
    """An adapter trained on restricted documents serves only members of its audience."""
    audience = set(ref.manifest.get("audience") or [])
    return not audience or bool(audience.intersection(principal.groups))


def _gold_document(row: dict) -> str | None:
    return row.get("document") or row.get("doc_id")


def load(path: str | Path = "ragtune.yaml", overrides: Sequence[str] = (), **kwargs) -> Project:
    """Load a project from its config file; `overrides` are `key.path=value` strings."""
    return Project(load_config(path, overrides), **kwargs)
