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
import hashlib
import json
import logging
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import torch

from framework import dataset as ds
from framework import prompts
from framework.adapters import AdapterError, AdapterRef, AdapterRegistry, base_fingerprint, check_base
from framework.confidence import Calibration, top_score
from framework.config import Config, load_config
from framework.embedder import Embedder, build_embedder
from framework.evaluation import load_questions, retrieval_metrics, score, score_by_split_kind
from framework.index import ChromaIndex
from framework.ingest import IngestReport, ingest, workspace_lock
from framework.ledger import Ledger
from framework.precision import resolve_dtype
from framework.progress import track
from framework.records import Answer, Principal, Source
from framework.rerank import CrossEncoderReranker, Reranker
from framework.retrieval import Retriever
from framework.router import MODE_TABLE, check_mode, choose_mode, resolve_auto

log = logging.getLogger(__name__)

ABSTAIN_TEXT = "The documents don't say."


class Project:
    def __init__(self, config: Config, *, show_progress: bool = True, embedder: Embedder | None = None,
                 reranker: Reranker | None = None) -> None:
        self.config = config
        self.workspace = config.workspace_path()
        self.show_progress = show_progress
        self._embedder = embedder
        self._reranker = reranker

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
        reranker = self._reranker
        if reranker is None and self.config.index.reranker:
            reranker = CrossEncoderReranker(self.config.index.reranker)
        return Retriever(self.index, self.embedder, lexical_dir, self.config.index, reranker=reranker)

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
        """The current (latest) version folder of the configured dataset."""
        return ds.dataset_dir(self.workspace, self.config.dataset.name)

    def teacher(self):
        """The model that writes questions for `dataset.generator: llm` (see framework.teacher)."""
        from framework.generator import HFGenerator
        from framework.models import resolve_generator
        from framework.teacher import OpenAICompatibleTeacher

        t = self.config.dataset.teacher
        if t.base_url:
            return OpenAICompatibleTeacher.from_config(t)
        if t.model == "generator":
            return self.generator
        path = resolve_generator(t.model, workspace=self.workspace, key="dataset.teacher.model")
        return HFGenerator(path, dtype=resolve_dtype(self.config.precision), batch_size=self.config.generator.batch_size)

    # -- ingest ----------------------------------------------------------------------------------
    def ingest(self, *, extra: Sequence = ()) -> IngestReport:
        """Bring the index up to date with every configured source.

        `extra` takes connectors built in Python (e.g. a LlamaIndexReaderConnector over a reader
        object); pass them on every run, since a source missing from a run leaves the index.
        """
        from connectors import build_connector

        if not self.config.sources and not extra:
            raise ValueError("config has no sources; add one under `sources:` (see docs/configuration.md)")
        names = [s.name for s in self.config.sources] + [c.name for c in extra]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique across the config and `extra`; got {names}")
        with workspace_lock(self.workspace):
            ledger = Ledger(self.workspace / "ledger.sqlite")
            try:
                c = self.config.index
                connectors = [build_connector(s) for s in self.config.sources] + list(extra)
                report = ingest(connectors, embedder=self.embedder,
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
        """Generate, filter, split and write the next version of the Q/A finetuning set; returns its card."""
        from framework.synthesis import synthesize

        chunks = self.index.rows()
        if not chunks:
            raise ValueError("the index is empty; run `ragtune ingest` first")
        audience = Principal(user="dataset", groups=tuple(self.config.dataset.audience))
        teacher = functools.lru_cache(maxsize=1)(self.teacher)
        c = self.config.index
        search_state = [self.index.acl_fingerprint(), self.embedder.name, c.retrieval, c.dense_weight,
                        c.lexical_weight, c.rrf_k, c.candidates]
        return synthesize(chunks, self.config.dataset, self.workspace / "datasets" / self.config.dataset.name,
                          search=lambda qs, k: self.retriever.retrieve_many(qs, principal=audience, k=k),
                          teacher=teacher, generator_model=self.config.generator.model,
                          search_fingerprint=hashlib.sha256(json.dumps(search_state).encode()).hexdigest()[:16],
                          show_progress=self.show_progress)

    # -- finetuning ------------------------------------------------------------------------------
    def finetune(self, *, resume: bool = False, callbacks: Sequence = ()) -> dict:
        """Train a LoRA adapter on the dataset and publish it as the next version; returns its manifest.

        `resume=True` continues the interrupted run of the same adapter, dataset and settings
        from its last checkpoint. Under torchrun / accelerate launch only the main process
        publishes; the others return an empty dict.
        """
        from accelerate import PartialState

        from framework.checkpoints import clear_checkpoints, prepare_checkpoints, run_identity
        from framework.finetune import frozen_dtype, train_lora
        from framework.manifest import build_manifest

        folder = self.dataset_dir()
        if not (folder / "card.json").is_file():
            raise FileNotFoundError(f"no dataset at {folder}; run `ragtune synth` first")
        card = json.loads((folder / "card.json").read_text())
        train = [json.loads(x) for x in (folder / "train.jsonl").read_text().splitlines() if x.strip()]
        evals = [json.loads(x) for x in (folder / "eval.jsonl").read_text().splitlines() if x.strip()]
        cfg = self.config.finetune
        bf16 = resolve_dtype(self.config.precision) == torch.bfloat16
        fingerprint = base_fingerprint(self.base_model_dir)
        identity = run_identity(dataset_hash=card["hash"], base_fingerprint=fingerprint,
                                precision="bf16" if bf16 else "fp32", hyperparameters=cfg.model_dump())
        checkpoints = self.workspace / "checkpoints" / cfg.adapter
        staging = self.adapters.staging_dir(cfg.adapter)
        resume_from = prepare_checkpoints(checkpoints, identity, resume=resume, staging=staging)
        started = datetime.now(timezone.utc)
        metrics = train_lora(self.base_model_dir, train, evals, cfg, staging, bf16=bf16, checkpoint_dir=checkpoints,
                             resume_from=resume_from, show_progress=self.show_progress, callbacks=callbacks)
        if not PartialState().is_main_process:
            return {}
        manifest = build_manifest(card=card, cfg=cfg, base_model=self.config.generator.model,
                                  base_fingerprint=fingerprint, precision=identity["precision"],
                                  base_dtype=str(frozen_dtype(cfg, bf16=bf16)).removeprefix("torch."),
                                  metrics=metrics, started=started, ledger=self.workspace / "ledger.sqlite")
        ref = self.adapters.publish(cfg.adapter, staging, manifest)
        clear_checkpoints(checkpoints)
        return ref.manifest

    # -- answering -------------------------------------------------------------------------------
    def adapter_for(self, principal: Principal) -> AdapterRef:
        """The adapter version serving this principal: their group's adapter (router.group_adapters) or
        router.adapter, at the version pinned in config, else the promoted one, else the newest."""
        r = self.config.router
        spec = next((r.group_adapters[g] for g in principal.groups if g in r.group_adapters), r.adapter)
        return self.adapters.resolve(spec, pinned=r.adapter_version if spec == r.adapter else None)

    def _adapter_key(self, principal: Principal) -> str:
        """Load the principal's adapter once (beside the others); checks its base and its audience."""
        ref = self.adapter_for(principal)
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
            if p["abstain"]:
                texts[i] = ABSTAIN_TEXT
            else:
                by_adapter.setdefault(p["adapter"], []).append(i)
        for adapter, idx in by_adapter.items():
            outs = self.generator.generate([plans[i]["conversation"] for i in idx], adapter=adapter,
                                           max_new_tokens=self.config.generator.max_new_tokens)
            for i, text in zip(idx, outs):
                texts[i] = text
        per_question = (time.perf_counter() - start) / max(1, len(questions))
        return [Answer(text=t, question=q, mode=p["mode"], prompt=self.generator.render(p["conversation"]),
                       sources=tuple(p["sources"]), adapter=p["adapter"], latency_s=per_question,
                       reason=p["reason"], confidence=p["confidence"], abstained=p["abstain"])
                for q, p, t in zip(questions, plans, texts)]

    def _plan(self, question: str, mode: str, reason: str, principal: Principal) -> dict:
        sources: list[Source] = []
        retrieved = mode == "auto"
        if retrieved:
            sources = self.retrieve(question, principal=principal)
            try:
                has_adapter = _in_audience(self.adapter_for(principal), principal)
            except AdapterError:
                has_adapter = False
            if self.calibration is not None:
                mode, reason = resolve_auto(self.calibration.confidence(top_score(sources)), has_adapter,
                                            self.config.router.auto_min_confidence, label="retrieval confidence")
            else:
                mode, reason = resolve_auto(top_score(sources), has_adapter, self.config.router.auto_min_score)
        retrieve, use_adapter = MODE_TABLE[check_mode(mode)]
        if retrieve and not retrieved:
            sources = self.retrieve(question, principal=principal)
        if not retrieve:
            sources = []
        confidence = self.calibration.confidence(top_score(sources)) if retrieve and self.calibration else None
        abstain = False
        floor = self.config.router.abstain_below
        if retrieve and floor is not None:
            value = confidence if confidence is not None else top_score(sources)
            if value is None or value < floor:
                abstain = True
                shown = "none" if value is None else f"{value:.3f}"
                reason = f"{reason}; abstained: {'confidence' if confidence is not None else 'top score'} " \
                         f"{shown} < router.abstain_below {floor}"
        adapter = self._adapter_key(principal) if use_adapter and not abstain else None
        conversation = prompts.with_context(question, sources) if retrieve else prompts.closed_book(question)
        return {"mode": mode, "reason": reason, "sources": sources, "adapter": adapter, "conversation": conversation,
                "confidence": confidence, "abstain": abstain}

    # -- confidence --------------------------------------------------------------------------
    @property
    def calibration_path(self) -> Path:
        return self.workspace / "calibration" / f"{self.config.index.collection}.json"

    @functools.cached_property
    def calibration(self) -> Calibration | None:
        """The saved fit for this index, if one was made with the same embedder and retrieval."""
        cal = Calibration.load(self.calibration_path)
        if cal is None:
            return None
        if (cal.embedder, cal.retrieval) != (self.embedder.name, self.config.index.retrieval):
            log.warning("ignoring %s: fitted for embedder %s with %s retrieval; run `ragtune eval --retrieval-only "
                        "--calibrate` again", self.calibration_path, cal.embedder, cal.retrieval)
            return None
        return cal

    def _require_readable(self, principal: Principal) -> None:
        """Scoring retrieval as a user who may read nothing gives zeros that look like a bad index."""
        # The dense index answers any query with the nearest readable chunk (BM25 may match nothing).
        if not self.index.search(self.embedder.embed(["probe"])[0], principal=principal, k=1):
            raise PermissionError(f"user {principal.user!r} (groups {list(principal.groups)}) may read no chunk of "
                                  "the index; score as a user who may read the documents (--group)")

    def calibrate(self, questions: Path | list[dict] | None = None, *, principal: Principal = Principal()) -> dict:
        """Fit and save retrieval confidence on questions with gold documents (see framework.confidence)."""
        rows = [r for r in self._question_rows(questions)
                if _gold_document(r) or r.get("document") == []]
        self._require_readable(principal)
        k = self.config.index.top_k
        scores, hits = [], []
        for row in track(rows, f"calibrate on {len(rows)} questions", enabled=self.show_progress):
            sources = self.retrieve(row["question"], principal=principal, k=k)
            gold = _gold_document(row)
            hit = bool(gold) and retrieval_metrics([sources], [gold], (k,))[f"hit@{k}"] == 1.0
            scores.append(top_score(sources) if sources else -1.0)
            hits.append(int(hit))
        cal = Calibration.fit(scores, hits, k=k, embedder=self.embedder.name, retrieval=self.config.index.retrieval)
        cal.save(self.calibration_path)
        self.__dict__.pop("calibration", None)
        return {**asdict(cal), "path": str(self.calibration_path)}

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
                             **score_by_split_kind(answers, rows), "answers": [a.to_dict() for a in answers]}
        return results

    def evaluate_retrieval(self, questions: Path | list[dict] | None = None, *, ks: tuple[int, ...] = (1, 3, 5, 10),
                           principal: Principal = Principal()) -> dict:
        """hit@k and MRR of the configured retrieval against each question's gold document, no generation."""
        rows = [r for r in self._question_rows(questions) if _gold_document(r)]
        if not rows:
            raise ValueError("no question names its gold document ('document' or 'doc_id'); nothing to score")
        self._require_readable(principal)
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
