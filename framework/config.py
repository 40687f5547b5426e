"""The ragtune.yaml schema: one pydantic model per section, typos fail loudly.

Every model forbids unknown keys, so a misspelled key is an error naming its path
instead of a silently ignored setting. `load_config` reports every problem at once.

The `sources:` entries are validated by the schema of their `type:`, which each connector
owns (connectors/<name>.py); the loader is given that table (`source_types`), so this
module never imports a connector. `framework.load_config` passes the shipped connectors.

Example:
    >>> from connectors import source_types
    >>> cfg = load_config_dict({"sources": [{"name": "docs", "type": "files", "path": "."}]},
    ...                        source_types=source_types())
    >>> cfg.router.default_mode
    'rag'
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, \
    model_validator

from framework import prompts
from framework.ingest.contract import GroupName, SourceConfig
from framework.records import MODE_TABLE, MODES, Mode

Precision = Literal["auto", "bf16", "fp32"]


class ConfigError(ValueError):
    """A config problem; the message lists every offending key path."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbeddingEndpointConfig(_Section):
    """An OpenAI-compatible `/v1/embeddings` server for `index.embedder: openai` (framework.retrieval.remote_embedder)."""

    base_url: str = Field(pattern=r"^https?://")
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_batch_tokens: int = Field(default=8192, ge=16)
    max_batch_texts: int = Field(default=128, ge=1, le=4096)
    max_tokens: int = Field(default=256, ge=16)
    concurrency: int = Field(default=2, ge=1, le=64)
    timeout_s: float = Field(default=60.0, gt=0)
    retries: int = Field(default=5, ge=0, le=20)
    backoff_s: float = Field(default=0.5, ge=0.0, le=60.0)
    dimensions: int | None = Field(default=None, ge=1)
    tokenizer: str | None = None  # a local copy of the served model's tokenizer (`bundled` or a folder) for chunking


class IndexConfig(_Section):
    embedder: str = "bundled"
    batch_size: int = Field(default=64, ge=1)
    chunk_size: int | None = Field(default=None, ge=16)
    chunk_overlap: int = Field(default=16, ge=0)
    path: str | None = None
    url: str | None = None
    collection: str = Field(default="ragtune", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")
    top_k: int = Field(default=3, ge=1, le=50)
    retrieval: Literal["hybrid", "dense", "lexical"] = "hybrid"
    dense_weight: float = Field(default=1.0, ge=0.0)
    lexical_weight: float = Field(default=1.0, ge=0.0)
    rrf_k: int = Field(default=60, ge=1)
    candidates: int = Field(default=20, ge=1, le=500)
    typo_tolerance: bool = True
    reranker: str | None = None
    rerank_candidates: int = Field(default=20, ge=1, le=200)
    endpoint: EmbeddingEndpointConfig | None = None

    @model_validator(mode="after")
    def _endpoint_for_openai(self) -> "IndexConfig":
        if self.embedder == "openai" and self.endpoint is None:
            raise ValueError("embedder openai needs endpoint: {base_url: http://host:port/v1, model: NAME}")
        if self.embedder != "openai" and self.endpoint is not None:
            raise ValueError("endpoint applies only to embedder: openai; set index.embedder: openai or remove it")
        return self


class IngestConfig(_Section):
    """How documents are parsed: in worker processes, each file bounded in time (see framework.ingest.parse_pool)."""

    parse_workers: int = Field(default=1, ge=0, le=64)
    parse_timeout_s: float = Field(default=60.0, gt=0)


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
# An adapter version as config names it: "support@v0003".
AdapterVersionSpec = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*@v[0-9]{4,}$")]


class GeneratorConfig(_Section):
    """The answering model: local weights (`backend: hf`) or an OpenAI-compatible endpoint (`backend: openai`,
    see docs/guides/serving.md) that answers while ragtune keeps retrieval, ACLs and routing; and how answers
    are decoded (defaults measured in docs/results.md)."""

    model: str = "bundled"
    max_new_tokens: int = Field(default=96, ge=1, le=4096)
    max_sentences: int | None = Field(default=3, ge=1)
    batch_size: int = Field(default=8, ge=1)
    # prompts padded to a multiple of this many tokens, batched only with prompts of the same padded length,
    # so an answer never depends on what it is batched with (docs/guides/serving.md); 0: pad to the batch's longest
    pad_multiple: int = Field(default=64, ge=0, le=4096)
    repetition_penalty: float = Field(default=1.0, ge=1.0)
    no_repeat_ngram_size: int = Field(default=4, ge=0)
    # auto: extractive for the bundled generator on local weights, generative for any other (docs/guides/answers.md)
    answer_style: Literal["auto", "generative", "extractive"] = "auto"
    evidence_sentences: int = Field(default=2, ge=0, le=10)
    backend: Literal["hf", "openai"] = "hf"
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: EnvName | None = None
    adapter_models: dict[AdapterVersionSpec, str] = {}
    timeout_s: float = Field(default=60.0, gt=0)
    http_retries: int = Field(default=2, ge=0, le=10)
    concurrency: int = Field(default=8, ge=1, le=256)
    # the base loaded for serving in 8-bit or 4-bit (bitsandbytes, CUDA only), e.g. the one a QLoRA adapter trained on
    quantization: Literal["none", "8bit", "4bit"] = "none"

    @model_validator(mode="before")
    @classmethod
    def _resolve_answer_style(cls, data):
        """`answer_style: auto` becomes the style measured best for this generator: the bundled 135M model
        recalls about twice the reference's words when it quotes its sources (docs/results.md)."""
        if isinstance(data, dict) and data.get("answer_style", "auto") == "auto":
            bundled = data.get("model", "bundled") == "bundled" and data.get("backend", "hf") == "hf"
            data = {**data, "answer_style": "extractive" if bundled else "generative"}
        return data

    @model_validator(mode="after")
    def _endpoint_settings(self) -> "GeneratorConfig":
        remote = {"base_url": self.base_url, "api_model": self.api_model, "api_key_env": self.api_key_env,
                  "adapter_models": self.adapter_models}
        if self.backend == "openai":
            missing = [k for k in ("base_url", "api_model") if not remote[k]]
            if missing:
                raise ValueError(f"backend openai needs {' and '.join(missing)} (the endpoint URL, e.g. "
                                 "http://127.0.0.1:8000/v1, and the name it serves the base model under)")
        elif used := [k for k, v in remote.items() if v]:
            raise ValueError(f"{', '.join(used)} apply only to backend: openai; set generator.backend: openai "
                             "or remove them")
        return self


class RuntimeConfig(_Section):
    """What the process may use of the machine (see framework.runtime.threads)."""

    threads: int | None = Field(default=None, ge=1, le=1024)
    # auto: the first CUDA GPU torch sees, else the CPU (framework.runtime.device)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")


class RaftConfig(_Section):
    fraction: float = Field(default=0.3, ge=0.0, le=1.0)
    oracle_probability: float = Field(default=0.8, ge=0.0, le=1.0)
    context_chunks: int = Field(default=3, ge=1, le=10)


class TeacherConfig(_Section):
    """The model that writes questions for `dataset.generator: llm` (see docs/guides/synthetic-data.md)."""

    model: str = "generator"
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float = Field(default=60.0, gt=0)
    http_retries: int = Field(default=3, ge=0, le=10)
    retry_backoff_s: float = Field(default=0.5, ge=0.0, le=60.0)
    parse_attempts: int = Field(default=2, ge=1, le=10)
    # room for the several question/answer blocks the synthesis prompt asks for per passage
    max_new_tokens: int = Field(default=400, ge=8, le=4096)
    concurrency: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _endpoint_needs_model(self) -> "TeacherConfig":
        if self.base_url and not self.api_model:
            raise ValueError("api_model is required with base_url (the model name the endpoint serves)")
        return self


class DatasetConfig(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    generator: Literal["extractive", "llm"] = "extractive"
    teacher: TeacherConfig = TeacherConfig()
    max_questions_per_chunk: int = Field(default=12, ge=1)
    # what the extractive generator's rows answer with: the source sentence, or the key span alone
    answer_form: Literal["sentence", "short"] = "sentence"
    paraphrases: int = Field(default=2, ge=0, le=10)
    imports: list[str] = Field(default=[], alias="import")
    eval_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    heldout_documents_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    min_question_chars: int = Field(default=12, ge=1)
    max_question_chars: int = Field(default=300, ge=1)
    max_answer_chars: int = Field(default=400, ge=1)
    near_duplicate_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    support_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    round_trip: bool = True
    round_trip_top_k: int = Field(default=5, ge=1, le=100)
    pii_mode: Literal["redact", "drop", "off"] = "redact"
    pii_patterns: dict[str, str] = {}
    pii_allow: list[str] = []
    pii_phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    audience: list[GroupName] = []
    min_examples: int = Field(default=20, ge=1)
    raft: RaftConfig = RaftConfig()
    # share of the eligible chunks (held-out documents excepted) also trained as plain text: the passage itself
    # as the answer to "quote the passage of <title> that starts with ...", mixed among the question rows
    raw_text_share: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int = 0


ReportTarget = Literal["tensorboard", "mlflow", "wandb", "comet_ml", "clearml", "neptune", "dvclive", "trackio",
                       "swanlab", "azure_ml", "codecarbon"]


# combined must not be worse than rag beyond the noise: the paired interval of the difference reaches 0.
DEFAULT_PROMOTION_GATE = ("combined.token_f1.delta.high >= 0",)


class FinetuneConfig(_Section):
    adapter: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    rank: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    learning_rate: float = Field(default=1e-3, gt=0)
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int = Field(default=-1, ge=-1)
    batch_size: int = Field(default=8, ge=1)
    gradient_accumulation: int = Field(default=1, ge=1)
    # auto: the longest training row, up to the base model's context window (framework.training.fitting)
    max_length: Annotated[int, Field(ge=16)] | Literal["auto"] = "auto"
    max_dropped_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    warmup_ratio: float = Field(default=0.05, ge=0.0, lt=1.0)
    seed: int = 0
    save_steps: int = Field(default=50, ge=0)
    keep_checkpoints: int = Field(default=2, ge=1)
    early_stopping_patience: int = Field(default=0, ge=0)
    report_to: list[ReportTarget] = []
    base_precision: Literal["fp32", "bf16"] = "fp32"
    # The version kept: the epoch whose closed-book knowledge check is best (framework.evaluation.knowledge)
    keep: Literal["best_knowledge", "best_eval_loss", "last"] = "best_knowledge"
    knowledge_probes: int = Field(default=48, ge=0)
    knowledge_max_new_tokens: int = Field(default=24, ge=1)
    knowledge_patience: int = Field(default=1, ge=0)
    knowledge_questions: str | None = None  # JSONL of your own questions (question, answer, document), also asked
    # `finetune --promote` promotes only when these hold on the eval split (framework.evaluation.promotion)
    gate: list[str] = list(DEFAULT_PROMOTION_GATE)
    # QLoRA: the frozen base in 8-bit or 4-bit NF4 (bitsandbytes, CUDA only; framework.runtime.quantization)
    quantization: Literal["none", "8bit", "4bit"] = "none"
    # auto: on when the memory estimate does not fit the device without it (framework.training.memory)
    gradient_checkpointing: Literal["auto"] | bool = "auto"
    # several examples per row without padding; false pads each batch to its longest example
    packing: bool = True


# An adapter name, optionally pinned to a version: "support" or "support@v0003".
AdapterSpec = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*(@v[0-9]{4,})?$")]


class RouterConfig(_Section):
    default_mode: Mode = "rag"
    groups: dict[GroupName, Mode] = {}
    adapter: AdapterSpec = "default"
    adapter_version: str | None = Field(default=None, pattern=r"^v[0-9]{4,}$")
    group_adapters: dict[GroupName, AdapterSpec] = {}
    auto_min_score: float = Field(default=0.35, ge=-1.0, le=1.0)
    auto_min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    # auto: the floor measured for index.embedder (framework.retrieval.confidence; docs/results.md, "Abstention")
    abstain_below: Annotated[float, Field(ge=-1.0, le=1.0)] | Literal["auto"] | None = "auto"
    abstain_below_confidence: float | None = Field(default=None, ge=0.0, le=1.0)


AdapterName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class AdapterProfile(_Section):
    """A named adapter for one team: its dataset and audience, so `ragtune synth / finetune / refresh --adapter
    NAME` replace `dataset.name`, `dataset.audience` and `finetune.adapter` together (docs/guides/adapters.md,
    Team adapters). Every other dataset and finetune setting comes from those sections."""

    audience: list[GroupName] = []
    dataset: AdapterName | None = None  # default: the profile's name


class AdaptersConfig(_Section):
    """Which trained version goes live: `promoted` (only after `ragtune adapters promote`) or `latest`; and the
    named adapter profiles (`profiles`)."""

    serve: Literal["promoted", "latest"] = "promoted"
    profiles: dict[AdapterName, AdapterProfile] = {}


class TokenConfig(_Section):
    """One bearer token of `ragtune serve` and the principal it stands for. The token itself never sits
    in YAML: name the environment variable holding it, or give its sha256 (hex)."""

    user: str = Field(min_length=1)
    groups: list[GroupName] = []
    token_env: EnvName | None = None
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="before")
    @classmethod
    def _no_plain_tokens(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            raise ValueError("a plain-text token does not belong in ragtune.yaml; put it in an environment variable "
                             "and name it with token_env, or give token_sha256 "
                             "(`printf %s \"$TOKEN\" | sha256sum`)")
        return data

    @model_validator(mode="after")
    def _one_token(self) -> "TokenConfig":
        if (self.token_env is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token_env (an environment variable holding the token) and "
                             "token_sha256 (the token's sha256, hex)")
        return self


class ServeConfig(_Section):
    """`ragtune serve`: where it listens, who may call it, and how big a request may be."""

    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=0, le=65535)
    tokens: list[TokenConfig] = []
    max_messages: int = Field(default=32, ge=1, le=1024)
    max_chars: int = Field(default=8000, ge=1)
    max_body_bytes: int = Field(default=65536, ge=1024)
    # one line per request and refusal, and the startup line (docs/guides/serving.md, "Logs"); --log-level/--log-format
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["plain", "json"] = "plain"


def _known_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    return mode


def _adapter_name(spec: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*(@v[0-9]{4,})?", spec):
        raise ValueError(f"adapter {spec!r} is not an adapter name: letters, digits, . _ -, optionally pinned to a "
                         "version (support or support@v0003); `ragtune adapters list` shows the trained ones")
    return spec


ArmName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# Names that `model` already means on the HTTP server (serving/wire.py, Catalog); an experiment cannot take one.
RESERVED_MODEL_NAMES = ("ragtune", *MODES)


def _free_model_name(name: str) -> str:
    if name in RESERVED_MODEL_NAMES:
        raise ValueError(f"{name!r} is already a model name (reserved: {', '.join(RESERVED_MODEL_NAMES)}); "
                         "experiments are `model` names too, so pick another")
    return name


class ArmConfig(_Section):
    """One arm of an experiment: the mode its units are answered in, and what it changes (docs/guides/ab-modes.md).
    The adapter's name is checked here; whether that version exists is checked when it is served."""

    name: ArmName
    mode: Annotated[str, AfterValidator(_known_mode)]
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    adapter: Annotated[str, AfterValidator(_adapter_name)] | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)
    prompt: str | None = Field(default=None, min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _fits_its_mode(self) -> "ArmConfig":
        retrieve, adapter = MODE_TABLE.get(self.mode, (True, True))  # auto may do either
        problems = []
        if self.adapter and not adapter:
            problems.append(f"adapter applies to finetuned, combined and auto; mode {self.mode} uses none")
        if self.top_k is not None and not retrieve:
            problems.append(f"top_k applies to the modes that retrieve; mode {self.mode} does not")
        if self.prompt is not None and self.mode == "auto":
            problems.append("prompt applies to one mode's prompt, and auto picks its mode per question; "
                            "give this arm a fixed mode")
        elif self.prompt is not None:
            problems += prompts.variant_problems(self.prompt, retrieve=retrieve)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ExperimentConfig(_Section):
    """An A/B experiment: units (users) hashed with `salt` to a bucket of 10,000, buckets to arms by weight
    (framework.experiments.assignment). A config change alone starts, stops and reshapes it."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"), AfterValidator(_free_model_name)]
    salt: str | None = Field(default=None, min_length=1)
    unit: Literal["user", "end_user"] = "user"
    arms: list[ArmConfig] = Field(min_length=2)
    control: str | None = None
    audience: list[GroupName] = []
    enabled: bool = True
    start: datetime | None = None
    end: datetime | None = None
    log_text: bool = False

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A date or time without a zone is UTC, so every server agrees when an experiment runs."""
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _consistent(self) -> "ExperimentConfig":
        names = [a.name for a in self.arms]
        problems = []
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"arm names must be unique; repeated: {', '.join(repeated)}")
        if self.control is not None and self.control not in names:
            problems.append(f"control {self.control!r} is not an arm; arms: {', '.join(names)}")
        if self.start and self.end and self.end <= self.start:
            problems.append(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        total = sum(a.weight for a in self.arms)
        if tiny := [a.name for a in self.arms if a.weight / total < 1e-4]:
            problems.append(f"arms {', '.join(tiny)} weigh under 1/10,000 of the total: less than one bucket")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def control_arm(self) -> str:
        """The arm the others are compared with: `control`, else the first arm."""
        return self.control or self.arms[0].name

    @property
    def hash_salt(self) -> str:
        return self.salt or self.name

    def running(self, now: datetime) -> bool:
        return self.enabled and (self.start is None or self.start <= now) and (self.end is None or now < self.end)


def _database_url(url: str) -> str:
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url):
        raise ValueError(f"{url!r} is not a database URL; write e.g. postgresql://user@host:5432/ragtune (a password "
                         "through ${ENV}) or sqlite:////absolute/path/experiments.sqlite, or leave the key out for "
                         "experiments.sqlite in the workspace")
    return url


# The gate a refresh passes before its candidate is promoted: not worse than the serving version on the
# facts that did not change (beyond the noise), at least as good on the changed ones (framework.refresh.gate).
DEFAULT_REFRESH_GATE = ("candidate@unchanged.token_f1.delta.high >= 0",
                        "candidate@changed.token_f1 >= serving@changed.token_f1")


class RefreshConfig(_Section):
    """`ragtune refresh`: changed documents to a new adapter version, warm-started from the serving one,
    evaluated against it and promoted only when `gate` passes (docs/guides/adapters.md, Refresh)."""

    replay: float = Field(default=0.2, ge=0.0, le=1.0)
    warm_start: bool = True
    epochs: float | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, ge=-1)
    learning_rate: float | None = Field(default=None, gt=0)
    mode: Literal["finetuned", "combined"] = "finetuned"
    gate: list[str] = list(DEFAULT_REFRESH_GATE)
    questions: str | None = None
    changed_questions: int = Field(default=40, ge=0)
    unchanged_questions: int = Field(default=40, ge=0)
    seed: int = 0


class Config(_Section):
    workspace: str = ".ragtune"
    precision: Precision = "auto"
    sources: list[SerializeAsAny[SourceConfig]] = []
    index: IndexConfig = IndexConfig()
    ingest: IngestConfig = IngestConfig()
    generator: GeneratorConfig = GeneratorConfig()
    dataset: DatasetConfig = DatasetConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    router: RouterConfig = RouterConfig()
    adapters: AdaptersConfig = AdaptersConfig()
    serve: ServeConfig = ServeConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    experiments: list[ExperimentConfig] = []
    # exposures and outcomes: a SQLAlchemy URL (postgresql://...); None: experiments.sqlite in the workspace
    experiments_store: Annotated[str, AfterValidator(_database_url)] | None = None

    @field_validator("experiments")
    @classmethod
    def _unique_experiments(cls, value: list[ExperimentConfig]) -> list[ExperimentConfig]:
        names = [e.name for e in value]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"experiment names must be unique (each is a `model` name); repeated: "
                             f"{', '.join(repeated)}")
        return value
    refresh: RefreshConfig = RefreshConfig()

    def workspace_path(self) -> Path:
        return Path(self.workspace).expanduser()

    def for_adapter(self, name: str | None) -> "Config":
        """This config with `adapters.profiles.NAME` applied: `finetune.adapter` NAME, `dataset.name` the
        profile's dataset (default NAME), `dataset.audience` its audience. None: the config as it is.

        Example:
            >>> cfg = Config.model_validate({"adapters": {"profiles": {"hr": {"audience": ["hr"]}}}})
            >>> team = cfg.for_adapter("hr")
            >>> team.finetune.adapter, team.dataset.name, team.dataset.audience
            ('hr', 'hr', ['hr'])
        """
        if name is None:
            return self
        profile = self.adapters.profiles.get(name)
        if profile is None:
            raise ConfigError(f"--adapter {name}: no adapters.profiles.{name} in the config (profiles: "
                              f"{', '.join(self.adapters.profiles) or 'none'}); add one, e.g. adapters: {{profiles: "
                              f"{{{name}: {{audience: [GROUP]}}}}}} (docs/guides/adapters.md, Team adapters)")
        return self.model_copy(update={
            "dataset": self.dataset.model_copy(update={"name": profile.dataset or name,
                                                       "audience": list(profile.audience)}),
            "finetune": self.finetune.model_copy(update={"adapter": name})})


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, path: str, errors: list[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string, so secrets stay out of YAML."""
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}.{i}", errors) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def repl(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        errors.append(f"{path}: environment variable {name} is not set (use ${{{name}:-default}} for a fallback)")
        return match.group(0)

    return _ENV.sub(repl, value)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split 'a.b.0.c=value' into a key path and a YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({err.problem or err})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set each `key.path=value` in a nested dict (list items by index)."""
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = data
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(f"override {text!r}: {'.'.join(keys[:i + 1])} is not an item of the list")
                key = int(key)
            elif not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(keys[:i])} is not a section")
            if last:
                node[key] = value
            else:
                if isinstance(node, dict) and key not in node:
                    node[key] = {}
                node = node[key]
    return data


SourceTypes = Mapping[str, type[SourceConfig]]


def _format_errors(err: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        msg = "unknown key (check the spelling; see docs/configuration.md)" if e["type"] == "extra_forbidden" \
            else e["msg"]
        lines.append(f"{loc or '<root>'}: {msg}")
    return lines


def _sources(raw: Any, types: SourceTypes, errors: list[str]) -> list[SourceConfig]:
    """Each `sources:` entry validated by the schema of its `type:`; problems go to `errors`."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors.append("sources: must be a list of source sections (each with name and type)")
        return []
    out = []
    for i, item in enumerate(raw):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in types:
            errors.append(f"sources.{i}: unknown source type {kind!r}; allowed: "
                          f"{', '.join(repr(t) for t in types)}")
            continue
        try:
            out.append(types[kind].model_validate(item))
        except ValidationError as err:
            errors.extend(_format_errors(err, f"sources.{i}"))
    names = [s.name for s in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        errors.append(f"sources: source names must be unique; repeated: {', '.join(repeated)}")
    return out


def load_config_dict(data: dict | None, overrides: list[str] = (), base_dir: Path | None = None, *,
                     source_types: SourceTypes) -> Config:
    """Validate a config dict (after overrides and ${ENV} interpolation), all errors at once.

    `source_types` maps each `sources[].type` to its schema (`connectors.source_types()`)."""
    data = apply_overrides(dict(data or {}), list(overrides))
    errors: list[str] = []
    data = _interpolate(data, "", errors)
    sources = _sources(data.get("sources"), source_types, errors)
    try:
        cfg = Config.model_validate({**data, "sources": []})
    except ValidationError as err:
        errors.extend(_format_errors(err))
        cfg = None
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    cfg = cfg.model_copy(update={"sources": sources})
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    return cfg


def _resolve_paths(cfg: Config, base: Path) -> Config:
    """Relative paths in a config file are relative to that file, not to the caller's cwd."""

    def rel(p: str | None) -> str | None:
        if p is None or Path(p).expanduser().is_absolute():
            return p
        return str(base / p)

    sources = [s.model_copy(update={"path": rel(s.path)}) if getattr(s, "path", None) else s for s in cfg.sources]
    index = cfg.index.model_copy(update={"path": rel(cfg.index.path), "reranker": rel(cfg.index.reranker)})
    dataset = cfg.dataset.model_copy(update={"imports": [rel(p) for p in cfg.dataset.imports]})
    refresh = cfg.refresh.model_copy(update={"questions": rel(cfg.refresh.questions)})
    return cfg.model_copy(update={"workspace": rel(cfg.workspace), "sources": sources, "index": index,
                                  "dataset": dataset, "refresh": refresh})


def load_config(path: str | Path, overrides: list[str] = (), *, source_types: SourceTypes) -> Config:
    """Read and validate a ragtune.yaml file (see `load_config_dict` for `source_types`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; create one with `ragtune init`")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return load_config_dict(data, overrides, base_dir=path.resolve().parent, source_types=source_types)
