"""Project: the composition root. It builds each stage's components from one ragtune.yaml.

Components are built on first use and kept (an app that only retrieves never loads the
generator; one base model serves all four modes), each exactly once however many threads
ask first: builds hold one re-entrant lock per project. Verbs are one-liners over the stages.

Example:
    >>> project = framework.load("ragtune.yaml"); project.ingest()   # doctest: +SKIP
    >>> project.ask("How many leave days?", mode="rag")              # doctest: +SKIP
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Callable, Sequence

from connectors import build_connector, source_types
from framework import config as config_schema
from framework.adapters.manifest import AdapterManifest
from framework.adapters.registry import AdapterRegistry
from framework.config import Config
from framework.dataset.card import DatasetCard
from framework.dataset.store import resolve_dataset_dir
from framework.evaluation import run as evaluation
from framework.evaluation.gate import parse_conditions
from framework.experiments.live import Experiments, check_arm_audiences
from framework.experiments.report import ExperimentReport
from framework.experiments.store import ExperimentStore
from framework.ingest.pipeline import IngestReport, ingest_sources, scan_changes
from framework.records import ANSWER_MODES, Answer, Principal, Source
from framework.retrieval.confidence import Calibration
from framework.retrieval.embedder import Embedder, embedder_from_config
from framework.retrieval.index import ChromaIndex
from framework.retrieval.rerank import Reranker
from framework.retrieval.retriever import Retriever
from framework.runtime.models import resolve_generator
from framework.runtime.device import configure_runtime
from framework.workspace import Workspace


class _built(functools.cached_property):
    """`cached_property` whose first build holds the project's one re-entrant lock: Python 3.12 dropped the
    lock cached_property had, so two threads asking first would each build a generator (and a worker: two
    owners of one model). Once built the value sits in the instance and is read without the lock."""

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        with instance._build_lock:
            return super().__get__(instance, owner)


class Project:
    def __init__(self, config: Config, *, show_progress: bool = True, embedder: Embedder | None = None,
                 reranker: Reranker | None = None) -> None:
        self.config = config
        self.workspace = Workspace(config.workspace_path())
        self.show_progress = show_progress
        self._embedder = embedder
        self._reranker = reranker
        self.device = configure_runtime(config.runtime)  # torch's threads, and the device models run on
        self._build_lock = threading.RLock()  # one component built at a time, each once (see _built)
        check_arm_audiences(config, self.adapters, serve=config.adapters.serve)  # audiences: in the manifests

    @_built
    def embedder(self) -> Embedder:
        c = self.config
        return self._embedder or embedder_from_config(c.index, precision=c.precision, device=self.device)

    @_built
    def index(self) -> ChromaIndex:
        return ChromaIndex.from_config(self.config.index, workspace=self.workspace, embedder_name=self.embedder.name)

    @_built
    def retriever(self) -> Retriever:
        return Retriever.from_config(self.index, self.embedder, self.config.index, workspace=self.workspace,
                                     reranker=self._reranker, device=self.device)

    @_built
    def base_model_dir(self) -> Path:
        return resolve_generator(self.config.generator.model)

    @_built
    def generator(self):
        """The answering model: local weights, or an OpenAI-compatible endpoint (`generator.backend: openai`)."""
        from framework.serving.generator import HFGenerator
        from framework.serving.remote import OpenAIGenerator

        g = self.config.generator
        return OpenAIGenerator.from_config(g) if g.backend == "openai" else \
            HFGenerator.from_config(self.base_model_dir, g, precision=self.config.precision, device=self.device)

    @_built
    def worker(self):
        """The one owner of the generator: every answer (any thread, the HTTP server) is queued here."""
        from framework.serving.worker import GenerationWorker

        return GenerationWorker(self.generator, max_batch=self.config.generator.batch_size)

    @property
    def adapters(self) -> AdapterRegistry:
        return AdapterRegistry(self.workspace.adapters)

    @_built
    def calibration(self) -> Calibration | None:
        """The saved retrieval-confidence fit, if made with this embedder and retrieval."""
        return Calibration.load(self.workspace.calibration(self.config.index.collection), embedder=self.embedder.name,
                                retrieval=self.config.index.retrieval)

    @_built
    def router(self):
        from framework.serving.router import Router

        remote = self.config.generator.backend == "openai"
        return Router(self.config.router, retriever=self.retriever, worker=self.worker, registry=self.adapters,
                      base_model_dir=None if remote else self.base_model_dir, calibration=self.calibration,
                      generator_cfg=self.config.generator, serve=self.config.adapters.serve)

    def _questions(self, questions: Path | list[dict] | None) -> list[dict]:
        return evaluation.question_rows(questions, eval_split=self.dataset_dir() / "eval.jsonl")

    @functools.cached_property
    def experiments(self) -> Experiments:
        """The A/B experiments of the config and their exposure/outcome store (framework.experiments)."""
        url = self.config.experiments_store or f"sqlite:///{self.workspace.experiments}"
        return Experiments(tuple(self.config.experiments), ExperimentStore(url))

    @functools.cached_property
    def ab(self):
        """The router under the experiments: assigns arms and logs exposures (serving/ab.py)."""
        from framework.serving.ab import ExperimentRouter

        return ExperimentRouter(self.router, self.experiments)

    def dataset_dir(self, version: str | None = None) -> Path:
        """A version folder of the configured dataset (the latest unless `version` names one)."""
        return resolve_dataset_dir(self.workspace.datasets, self.config.dataset.name, version)

    def ingest(self, *, extra: Sequence = (), on_step: Callable[[str], None] | None = None) -> IngestReport:
        """Bring the index up to date with every source and `extra` connectors built in Python (see ingest.pipeline)."""
        return ingest_sources([build_connector(s) for s in self.config.sources] + list(extra), workspace=self.workspace,
                              embedder=self.embedder, index=self.index, index_cfg=self.config.index,
                              ingest_cfg=self.config.ingest, show_progress=self.show_progress, on_step=on_step,
                              then=self.retriever.rebuild_lexical)

    def retrieve(self, question: str, *, principal: Principal, k: int | None = None) -> list[Source]:
        """The top-k chunks the principal may read (dense, lexical or hybrid, as configured)."""
        return self.retriever.retrieve(question, principal=principal, k=k)

    def synthesize(self) -> DatasetCard:
        """Generate, filter, split and write the next version of the Q/A finetuning set; returns its card."""
        from framework.dataset.pipeline import synthesize

        c, d = self.config, self.config.dataset
        audience = Principal(user="dataset", groups=tuple(d.audience))
        return synthesize(self.index.rows(), d, self.workspace.dataset_root(d.name),
                          search=lambda qs, k: self.retriever.retrieve_many(qs, principal=audience, k=k),
                          teacher=functools.cache(lambda: _teacher(self)), generator_model=c.generator.model,
                          search_fingerprint=self.retriever.fingerprint(), show_progress=self.show_progress)

    def finetune(self, *, resume: bool = False, callbacks: Sequence = (),
                 promote: bool = False) -> AdapterManifest | None:
        """Train on the latest dataset version and publish the next adapter version (training.run); `promote`: served
        once `finetune.gate` passes on the eval split (evaluation.promotion)."""
        from framework.evaluation.promotion import finetune_and_gate

        return finetune_and_gate(self, resume=resume, callbacks=callbacks, promote=promote)

    def refresh(self, *, dry_run: bool = False, force: bool = False, callbacks: Sequence = (),
                on_step: Callable[[str], None] | None = None):
        """Changed documents to a new adapter version: ingest, synthesis of the changed chunks, training warm-started
        from the serving version, evaluation against it, promotion if `refresh.gate` passes (framework.refresh.run).
        Returns a RefreshReport; `dry_run` only plans and estimates."""
        from framework.refresh.run import Stages, refresh

        stages = Stages(ingest=self.ingest, chunks=lambda: self.index.rows(), synthesize=self.synthesize,
                        evaluate=self.evaluate, base_model_dir=lambda: self.base_model_dir,
                        scan=lambda: scan_changes(list(map(build_connector, self.config.sources)), workspace=self.workspace,
                                                  embedder=self.embedder, index_cfg=self.config.index))
        return refresh(stages, config=self.config, workspace=self.workspace, registry=self.adapters, dry_run=dry_run,
                       force=force, callbacks=callbacks, on_step=on_step, show_progress=self.show_progress)

    def estimate_finetune(self, *, measure_steps: int = 2):
        """Examples, tokens, measured tokens/s and so the duration of `finetune` (see training.estimate)."""
        from framework.training.run import estimate_run

        return estimate_run(dataset_dir=self.dataset_dir(), base_model_dir=self.base_model_dir,
                            cfg=self.config.finetune, precision=self.config.precision, measure_steps=measure_steps)

    def ask(self, question: str, *, mode: str | None = None, user: str = "anonymous",
            groups: Sequence[str] = (), experiment: str | None = None) -> Answer:
        """Answer one question in the routed mode (thread-safe); the Answer carries its prompt, lineage and request
        id (and, under an A/B experiment, the experiment and arm)."""
        return self.ask_many([question], mode=mode, principal=Principal(user=user, groups=tuple(groups)),
                             experiment=experiment)[0]

    def ask_many(self, questions: Sequence[str], *, mode: str | None = None, principal: Principal = Principal(),
                 max_new_tokens: int | None = None, experiment: str | None = None) -> list[Answer]:
        """Answer several questions (same mode for all), batched per adapter; `max_new_tokens` lowers the budget.
        Without an explicit mode, the caller's arm of a running experiment applies (`experiment`: that one)."""
        return self.ab.answer(questions, principal=principal, mode=mode, experiment=experiment,
                              max_new_tokens=max_new_tokens)

    def record_outcome(self, request_id: str, name: str, value: float | bool) -> None:
        """Record what came of an answer given under an experiment (thumbs_up 1/0, resolved, a rating), by its
        `Answer.request_id`; an id no experiment served raises UnknownRequestError and writes nothing."""
        self.experiments.record_outcome(request_id, name, value)

    def ab_report(self, name: str, *, folder: Path | None = None,
                  per_unit: bool = False) -> tuple[ExperimentReport, list[Path]]:
        """The A/B report of experiment `name`, written to `folder` (default reports/ab/NAME/<time>/);
        `per_unit`: one observation per user instead of per request (framework.experiments.report)."""
        return self.experiments.report(name, folder=folder or self.workspace.ab_report(name), per_unit=per_unit)

    def close(self) -> None:
        """Stop the generation worker once its queued questions are answered (a later `ask` needs a new Project)."""
        if "worker" in self.__dict__:
            self.worker.close()
        if "experiments" in self.__dict__:
            self.experiments.store.close()

    def compare(self, question: str, *, principal: Principal = Principal(),
                modes: Sequence[str] = ANSWER_MODES) -> evaluation.Comparison:
        """One question in every mode, side by side (a refused mode says why)."""
        return evaluation.compare(self.router, question, principal=principal, modes=modes)

    def evaluate(self, questions: Path | list[dict] | None = None, *, modes: Sequence[str] = ANSWER_MODES,
                 adapters: Sequence[str] = (), baseline: str | None = None, gates: Sequence[str] = (),
                 principal: Principal = Principal(), title: str = "ragtune eval",
                 extra: dict | None = None) -> evaluation.EvaluationResult:
        """Score the modes on the same questions (default: the eval split) and write the report (evaluation.run)."""
        parse_conditions(gates)  # a typo fails before any model loads
        return evaluation.evaluate(self.router, self._questions(questions), modes=modes, adapters=adapters,
                                   baseline=baseline, gates=gates, principal=principal, embedder=self.embedder,
                                   show_progress=self.show_progress, report=self.workspace, title=title, extra=extra)

    def evaluate_retrieval(self, questions: Path | list[dict] | None = None, *, ks: tuple[int, ...] = (1, 3, 5, 10),
                           principal: Principal = Principal()) -> dict:
        """hit@k and MRR of the configured retrieval against each question's gold document, no generation."""
        return evaluation.evaluate_retrieval(self.retriever, self._questions(questions), ks=ks, principal=principal)

    def calibrate(self, questions: Path | list[dict] | None = None, *, principal: Principal = Principal()) -> dict:
        """Fit and save retrieval confidence on questions with gold documents (see framework.retrieval.confidence)."""
        fit = evaluation.calibrate(self.retriever, self._questions(questions), principal=principal,
                                   path=self.workspace.calibration(self.config.index.collection),
                                   show_progress=self.show_progress)
        for stale in ("calibration", "router"):  # the next answer reads the new fit
            self.__dict__.pop(stale, None)
        return fit


def _teacher(project: Project):
    """The model that writes questions for `dataset.generator: llm` (framework.dataset.teacher): the serving model
    asked through its worker (so synthesis and answers can run at once), or its own model or endpoint."""
    from framework.dataset.teacher import build_teacher
    from framework.serving.generator import HFGenerator
    from framework.serving.worker import WorkerTeacher

    c = project.config
    return build_teacher(c.dataset.teacher, serving=lambda: WorkerTeacher(project.worker),
                         load_local=lambda spec: HFGenerator.from_config(
                             resolve_generator(spec, key="dataset.teacher.model"), c.generator, precision=c.precision))


def load_config(path: str | Path = "ragtune.yaml", overrides: Sequence[str] = ()) -> Config:
    """Read and validate a ragtune.yaml, with the source schemas of every shipped connector."""
    return config_schema.load_config(path, list(overrides), source_types=source_types())


def load_config_dict(data: dict | None, overrides: Sequence[str] = (), base_dir: Path | None = None) -> Config:
    """Validate a config dict as `load_config` does a file (relative paths resolve against `base_dir`)."""
    return config_schema.load_config_dict(data, list(overrides), base_dir, source_types=source_types())


def load(path: str | Path = "ragtune.yaml", overrides: Sequence[str] = (), **kwargs) -> Project:
    """Load a project from its config file; `overrides` are `key.path=value` strings."""
    return Project(load_config(path, overrides), **kwargs)
