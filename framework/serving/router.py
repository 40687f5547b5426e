"""The router: which mode answers a question, with which adapter, and why, in one place.

Mode: the caller's explicit choice, else the caller's arm of a running A/B experiment
(assigned by framework.experiments; the arm may also set the adapter, top_k and the prompt),
else the first of the principal's groups that config maps to a mode (`router.groups`), else
`router.default_mode`. The four answering modes are a table (`framework.records.MODE_TABLE`:
retrieve? adapter?), not a graph. `auto` decides per question from retrieval: `combined`
(or `rag` without a usable adapter) when retrieval is confident, `finetuned` (or
`prompt_only`) otherwise; and `rag` whenever the adapter does not know the top retrieved
document (not in its manifest's trained documents, or failed its knowledge check), with
the reason saying so. An adapter is usable when one is served to the principal,
they are in its audience, and the generator can answer with it (`Router.unusable`: an endpoint
maps the version; local weights fit the base model); an adapter served but unusable is named in
the reason. Confidence is the calibrated
probability when the index has a calibration (framework.retrieval.confidence), else the
raw top cosine score; it is computed once per question.

Abstention: `rag` and `combined` (and `auto` when it resolves to one of them) answer ABSTAIN_TEXT,
without generating, when the best retrieved chunk's cosine similarity is below `router.abstain_below`
(default `auto`: the floor measured for the configured embedder, docs/results.md), or, with a calibration and
`router.abstain_below_confidence` set, when the calibrated confidence is below that; a principal who
may read nothing relevant is told the documents they can read don't say, rather than given an answer
invented from unrelated passages. `prompt_only` and `finetuned` retrieve nothing, so nothing to judge:
they never abstain.

Adapter: the principal's group adapter (`router.group_adapters`) or `router.adapter`, at
the version pinned in config, else the promoted one (or the newest, with `adapters.serve:
latest`); a version nobody promoted is not served. An adapter trained
on restricted documents serves only members of its audience (weights cannot filter what
they learned), so anyone else is refused, and `auto` falls back to the modes without it.
Answers name the version ("t-v0002"); the generator holds its weights under a key that also
digests the published files (`AdapterRef.load_key`), so weights replaced under a version's
folder are loaded again, never answered from memory.

Generation goes through the one GenerationWorker that owns the model (serving/worker.py):
`answer` plans in the caller's thread (retrieval, mode, adapter, audience), then queues the
conversations, which the worker answers in micro-batches grouped by adapter, so no two
adapters are in one forward pass and any number of threads may call `answer` at once.
Everything but `Router` is a pure function; `Router` takes its parts, so it is tested
without a Project.

Example:
    >>> from framework.config import GeneratorConfig, RouterConfig
    >>> choose_mode(None, Principal(groups=("support",)), RouterConfig(groups={"support": "combined"}))
    ('combined', 'group support')
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from framework import prompts
from framework.adapters.manifest import AdapterManifest
from framework.adapters.registry import (
    AdapterError,
    AdapterRef,
    AdapterRegistry,
    ServeRule,
    base_fingerprint,
    check_base,
    parse_spec,
)
from framework.config import GeneratorConfig, RouterConfig
from framework.experiments.assignment import Assignment
from framework.records import MODE_TABLE, MODES, Answer, Principal, Source
from framework.retrieval.confidence import Calibration, abstain_floor, top_score
from framework.retrieval.retriever import Retriever
from framework.serving.evidence import extractive_answer, supporting_evidence
from framework.serving.generator import Generation
from framework.serving.worker import GenerationWorker, results

ABSTAIN_TEXT = "The documents I can read don't say."


class UnknownModeError(ValueError):
    pass


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UnknownModeError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    return mode


def choose_mode(explicit: str | None, principal: Principal, cfg: RouterConfig, *,
                arm: Assignment | None = None) -> tuple[str, str]:
    """Return (mode, reason): explicit > experiment arm > group default > config default."""
    if explicit:
        return check_mode(explicit), "explicit"
    if arm is not None:
        return arm.mode, f"experiment {arm.experiment} arm {arm.arm}"
    for group in principal.groups:
        if group in cfg.groups:
            return cfg.groups[group], f"group {group}"
    return cfg.default_mode, "router.default_mode"


def resolve_auto(top_score: float | None, has_adapter: bool, min_score: float,
                 label: str = "top retrieval score") -> tuple[str, str]:
    """auto: use the documents when retrieval is confident, the adapter's memory otherwise.

    `top_score` is the calibrated confidence when the index has a calibration (`label`
    says which), else the raw top cosine similarity."""
    confident = top_score is not None and top_score >= min_score
    score = "none" if top_score is None else f"{top_score:.3f}"
    if confident:
        return ("combined" if has_adapter else "rag"), f"auto: {label} {score} >= {min_score}"
    return ("finetuned" if has_adapter else "prompt_only"), f"auto: {label} {score} < {min_score}"


def in_audience(manifest: AdapterManifest, principal: Principal) -> bool:
    """An adapter trained on restricted documents serves only members of its audience."""
    return not manifest.audience or bool(set(manifest.audience).intersection(principal.groups))


def served_adapter(registry: AdapterRegistry, cfg: RouterConfig, principal: Principal, *,
                   serve: ServeRule = "promoted") -> AdapterRef:
    """The adapter version serving this principal: their group's adapter or `router.adapter`, at the
    version pinned in config (`router.adapter_version` applies to `router.adapter` only), else the
    promoted one (`serve="latest"`: the newest). Read from the registry on every call, so a promotion
    goes live with the next question, in every process sharing the workspace."""
    spec = next((cfg.group_adapters[g] for g in principal.groups if g in cfg.group_adapters), cfg.adapter)
    return registry.resolve(spec, pinned=cfg.adapter_version if spec == cfg.adapter else None, serve=serve)


def served_versions(registry: AdapterRegistry, cfg: RouterConfig, name: str, *,
                    serve: ServeRule = "promoted") -> list[str]:
    """Every version the router serves for adapter `name` (what `ragtune adapters list` marks), in config
    order: `router.adapter`, then `router.group_adapters`, each at its own pin (a group's `hr@v0002` serves
    v0002 whatever is promoted); an adapter config does not name: its promoted (or newest) version."""
    specs = [(cfg.adapter, cfg.adapter_version), *((spec, None) for spec in cfg.group_adapters.values())]
    mine = [(spec, pinned) for spec, pinned in specs if parse_spec(spec)[0] == name] or [(name, None)]
    refs = [registry.served(spec, pinned=pinned, serve=serve) for spec, pinned in mine]
    return list(dict.fromkeys(ref.version for ref in refs if ref is not None))


def served_version(registry: AdapterRegistry, cfg: RouterConfig, name: str, *,
                   serve: ServeRule = "promoted") -> str | None:
    """The one version the router serves for adapter `name`; None: none. Where config serves several
    (a group pins another version), an AdapterError that lists them, so the caller names one."""
    versions = served_versions(registry, cfg, name, serve=serve)
    if len(versions) > 1:
        raise AdapterError(f"adapter {name!r} serves versions {', '.join(versions)} (router.adapter and "
                           f"router.group_adapters pin different ones); name one: {name}@{versions[0]} or "
                           f"--version {versions[0]}")
    return versions[0] if versions else None


def abstention(value: float | None, floor: float | None, label: str, key: str = "router.abstain_below") -> str | None:
    """Why a retrieving answer abstains (the reason's suffix), or None when it answers. No value (nothing
    readable was retrieved) abstains whenever a floor is set."""
    if floor is None or (value is not None and value >= floor):
        return None
    shown = "none" if value is None else f"{value:.3f}"
    return f"abstained: {label} {shown} < {key} {floor}"


def abstains(sources: Sequence[Source], confidence: float | None, cfg: RouterConfig, floor: float | None) -> str | None:
    """The abstention rule of a retrieving answer: the calibrated confidence against
    `router.abstain_below_confidence` when both exist, else the top cosine score against `floor`
    (`router.abstain_below`, resolved by framework.retrieval.confidence.abstain_floor).

    Example:
        >>> abstains([], None, RouterConfig(), 0.3)
        'abstained: top score none < router.abstain_below 0.3'
    """
    if confidence is not None and cfg.abstain_below_confidence is not None:
        return abstention(confidence, cfg.abstain_below_confidence, "confidence", "router.abstain_below_confidence")
    return abstention(top_score(sources), floor, "top score")


@dataclass(frozen=True)
class Plan:
    """Everything decided for one question before generation."""

    question: str
    mode: str
    reason: str
    sources: tuple[Source, ...]
    adapter: str | None  # the version's human key ("t-v0002"), what Answer.adapter shows
    adapter_key: str | None  # the key the worker loads the weights under (AdapterRef.load_key when local)
    adapter_path: Path | None
    confidence: float | None
    abstain: bool
    conversation: list[dict]


class Router:
    """Answers questions for a principal: plans each one here, then queues it to the generation worker, which
    batches it with other callers' questions of the same adapter.

    Example:
        >>> router = Router(cfg.router, retriever=retriever, worker=GenerationWorker(generator),  # doctest: +SKIP
        ...                 registry=AdapterRegistry(ws.adapters), base_model_dir=base)
        >>> router.answer(["How many leave days?"], principal=Principal(groups=("staff",)))  # doctest: +SKIP
    """

    def __init__(self, cfg: RouterConfig, *, retriever: Retriever, worker: GenerationWorker, registry: AdapterRegistry,
                 base_model_dir: Path | None, calibration: Calibration | None = None,
                 generator_cfg: GeneratorConfig = GeneratorConfig(), serve: ServeRule = "promoted") -> None:
        self.cfg = cfg
        self.retriever = retriever
        self.worker = worker
        self.registry = registry
        self.base_model_dir = base_model_dir  # None: the backend holds the base (remote); no fingerprint check
        self.calibration = calibration
        self.max_new_tokens = generator_cfg.max_new_tokens
        self.serve = serve
        self.answer_style = generator_cfg.answer_style
        self.evidence_sentences = generator_cfg.evidence_sentences
        index_cfg = retriever.cfg
        self.abstain_floor = abstain_floor(cfg.abstain_below, index_cfg.embedder, index_cfg.retrieval)

    @property
    def generator(self):
        return self.worker.generator

    def answer(self, questions: Sequence[str], *, principal: Principal, mode: str | None = None,
               max_new_tokens: int | None = None, arm: Assignment | None = None,
               stop: Sequence[str] = ()) -> list[Answer]:
        """Answer several questions (same requested mode for all); safe to call from many threads at once.

        `max_new_tokens` lowers the configured budget (`generator.max_new_tokens`) for these answers; `arm`, the
        caller's experiment arm, applies unless `mode` is explicit (serving/ab.py assigns and logs it); `stop`: strings
        that end generation once generated (OpenAI's `stop`; the HTTP server cuts the text before them)."""
        if not all(isinstance(q, str) and q.strip() for q in questions):
            raise ValueError("every question must be a non-empty string")
        budget = min(max_new_tokens or self.max_new_tokens, self.max_new_tokens)
        requested, reason = choose_mode(mode, principal, self.cfg, arm=arm)
        arm = None if mode else arm
        start = time.perf_counter()
        plans = [self.plan(q, requested, reason, principal, arm=arm) for q in questions]
        extract = self.answer_style == "extractive"
        quoted = {i: extractive_answer(p.question, p.sources, embed=self.retriever.embedder.embed,
                                       limit=max(1, self.evidence_sentences))
                  for i, p in enumerate(plans) if extract and p.sources and not p.abstain}
        plans = [dataclasses.replace(p, adapter=None) if i in quoted else p for i, p in enumerate(plans)]
        futures = [self.worker.submit(p.conversation, max_new_tokens=budget, stop=tuple(stop),
                                      adapter=(p.adapter_key, p.adapter_path) if p.adapter else None)
                   for i, p in enumerate(plans) if not p.abstain and i not in quoted]
        done = iter(results(futures))
        outs = [Generation(ABSTAIN_TEXT) if p.abstain else Generation(quoted[i][0]) if i in quoted else next(done)
                for i, p in enumerate(plans)]
        evidence = [quoted[i][1] if i in quoted else () if p.abstain else
                    supporting_evidence(g.text, p.sources, limit=self.evidence_sentences)
                    for i, (p, g) in enumerate(zip(plans, outs))]
        per_question = (time.perf_counter() - start) / max(1, len(questions))
        served = self.generator.serving_info() if hasattr(self.generator, "serving_info") else {}
        return [Answer(text=g.text, question=p.question, mode=p.mode, prompt=self.generator.render(p.conversation),
                       sources=p.sources, adapter=p.adapter, latency_s=per_question, reason=p.reason,
                       confidence=p.confidence, abstained=p.abstain, generated_tokens=g.tokens,
                       truncated=g.truncated, evidence=e, prompt_tokens=g.prompt_tokens, device=served.get("device"),
                       precision=served.get("precision")) for p, g, e in zip(plans, outs, evidence)]

    def plan(self, question: str, mode: str, reason: str, principal: Principal, *,
             arm: Assignment | None = None) -> Plan:
        """Mode, sources, confidence, abstention and adapter for one question, retrieving at most once;
        an experiment `arm` may set the adapter, top_k and prompt."""
        sources: list[Source] | None = None
        settings = arm.settings if arm else None
        k, spec = (settings.top_k, settings.adapter) if settings else (None, None)
        if mode == "auto":
            sources = self.retriever.retrieve(question, principal=principal, k=k)
            mode, why_auto = self._auto(sources, principal, spec)
            reason = f"{reason}; {why_auto}" if arm else why_auto
        retrieve, use_adapter = MODE_TABLE[check_mode(mode)]
        if not retrieve:
            sources = []
        elif sources is None:
            sources = self.retriever.retrieve(question, principal=principal, k=k)
        confidence = self._confidence(sources) if retrieve else None
        why = abstains(sources, confidence, self.cfg, self.abstain_floor) if retrieve else None
        adapter = self.adapter_ref(principal, spec) if use_adapter and why is None else None
        if settings and settings.prompt:
            conversation = prompts.with_variant(settings.prompt, question, sources if retrieve else None)
        else:
            conversation = prompts.with_context(question, sources) if retrieve else prompts.closed_book(question)
        return Plan(question=question, mode=mode, reason=f"{reason}; {why}" if why else reason,
                    sources=tuple(sources), adapter=adapter.key if adapter else None,
                    adapter_key=self._load_key(adapter) if adapter else None,
                    adapter_path=adapter.path if adapter else None, confidence=confidence,
                    abstain=why is not None, conversation=conversation)

    def _confidence(self, sources: Sequence[Source]) -> float | None:
        return self.calibration.confidence(top_score(sources)) if self.calibration is not None else None

    def _auto(self, sources: Sequence[Source], principal: Principal, spec: str | None = None) -> tuple[str, str]:
        has_adapter, why_not = self._auto_adapter(principal, spec)
        unknown = self._unknown(sources, principal, spec) if has_adapter else None
        if unknown:
            return "rag", unknown
        if self.calibration is not None:
            mode, reason = resolve_auto(self._confidence(sources), has_adapter, self.cfg.auto_min_confidence,
                                        label="retrieval confidence")
        else:
            mode, reason = resolve_auto(top_score(sources), has_adapter, self.cfg.auto_min_score)
        return mode, f"{reason}; {why_not}" if why_not else reason

    def _unknown(self, sources: Sequence[Source], principal: Principal, spec: str | None) -> str | None:
        """Why `auto` leaves the adapter out (its reason), or None: the adapter does not know the document of
        the top retrieved chunk (not trained on it, or it failed the knowledge check), so its memory cannot add
        to what retrieval found and `rag` answers from the documents alone."""
        if not sources:
            return None
        ref = self._served(principal, spec)
        doc = sources[0].doc_id
        if not ref.manifest.unknown_documents([doc]):
            return None
        checked = (ref.manifest.knowledge.get("documents") or {}).get(doc)
        why = (f"failed its knowledge check ({checked['hits']} of {checked['probes']} held-out probes answered)"
               if checked else "was not trained on it")
        return f"auto: rag, adapter {ref.key} does not know {doc} (the top retrieved document): it {why}"

    def _auto_adapter(self, principal: Principal, spec: str | None = None) -> tuple[bool, str | None]:
        """Whether `auto` may answer with the principal's adapter; where one is served to them but this
        generator cannot use it, also why not (for the answer's reason). None served, or outside its
        audience: no adapter, as before."""
        try:
            ref = self._served(principal, spec)
        except AdapterError:
            return False, None
        if not in_audience(ref.manifest, principal):
            return False, None
        why = self.unusable(ref)
        return why is None, f"adapter {ref.key} not used: {why}" if why else None

    def unusable(self, ref: AdapterRef) -> str | None:
        """Why the generator cannot answer with `ref` (None: it can), checked without loading weights:
        an endpoint must map the version (`generator.adapter_models`); local weights must have been trained
        on this base model (fingerprints compared; the base's is computed once)."""
        if self.base_model_dir is None:
            if self.generator.has_adapter(ref.key):
                return None
            return f"generator.adapter_models maps no endpoint model to {ref.name}@{ref.version}"
        if ref.manifest.base_fingerprint != self._base_fingerprint:
            return (f"it was trained on base model {ref.manifest.base_model!r} (fingerprint "
                    f"{ref.manifest.base_fingerprint}), not on generator.model (fingerprint {self._base_fingerprint})")
        return None

    @functools.cached_property
    def _base_fingerprint(self) -> str:
        return base_fingerprint(self.base_model_dir)

    def _served(self, principal: Principal, spec: str | None) -> AdapterRef:
        """An experiment arm's adapter (`spec`: name or name@vNNNN), else the principal's configured one."""
        if spec is not None:
            return self.registry.resolve(spec, serve=self.serve)
        return served_adapter(self.registry, self.cfg, principal, serve=self.serve)

    def adapter_ref(self, principal: Principal, spec: str | None = None) -> AdapterRef:
        """The principal's served adapter (or an experiment arm's, `spec`), after checking its audience and
        (before its first load) its base; the worker loads it into the generator."""
        ref = self._served(principal, spec)
        if not in_audience(ref.manifest, principal):
            raise PermissionError(
                f"adapter {ref.key} learned documents restricted to {sorted(ref.manifest.audience)}; user "
                f"{principal.user!r} (groups {list(principal.groups)}) is not in that audience. Use mode rag or "
                "prompt_only, or an adapter trained for this user's groups."
            )
        if self.base_model_dir is not None and not self.generator.has_adapter(ref.load_key):
            check_base(ref, self.base_model_dir)
        return ref

    def _load_key(self, ref: AdapterRef) -> str:
        """Local weights load under a key unique to the files published (AdapterRef.load_key), so replaced
        weights are loaded again; an endpoint serves versions under the names config maps them to."""
        return ref.key if self.base_model_dir is None else ref.load_key
