"""Records that flow between the stages; frozen so a stage cannot edit another's output.

Example:
    >>> doc = Document(id="files:a.md", text="Hello", source="files", uri="file:///a.md",
    ...                title="a", content_hash="abc", acl=("public",))
    >>> doc.title
    'a'
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, get_args

# The one list of modes. `auto` picks one of the other four per question (serving/router.py).
Mode = Literal["prompt_only", "rag", "finetuned", "combined", "auto"]
MODES: tuple[str, ...] = get_args(Mode)
# The modes an answer is produced in, as a table: mode -> (retrieve, use the adapter).
MODE_TABLE: dict[str, tuple[bool, bool]] = {
    "prompt_only": (False, False),
    "rag": (True, False),
    "finetuned": (False, True),
    "combined": (True, True),
}
ANSWER_MODES: tuple[str, ...] = tuple(MODE_TABLE)
PUBLIC_GROUP = "public"
# A group name a principal may hold and an access list may name: a letter or digit first, then
# letters, digits, spaces and `. _ : @ / + # = -`, no space at the end, at most 128 characters.
# It covers identity-provider names ("hr", "eng/platform", "team@corp.com", "Finance Team") and
# the connectors' own ("slack:<channel>"), and leaves no way to name a reserved or sentinel value
# ("__nobody__", "*", ""), so no caller can claim the documents an empty access list keeps from everyone.
GROUP_PATTERN = r"[^\W_](?:[\w .:@/+#=-]{0,126}[\w.:@/+#=-])?"
_GROUP = re.compile(GROUP_PATTERN)


def is_group(name: object) -> bool:
    """Whether `name` is a group name a principal may hold (see GROUP_PATTERN)."""
    return isinstance(name, str) and _GROUP.fullmatch(name) is not None


def check_group(name: object, *, where: str = "group") -> str:
    """`name` when it is a valid group name, else a ValueError saying what is wrong and the rule.

    Example:
        >>> check_group("slack:general")
        'slack:general'
        >>> is_group("__nobody__"), is_group(""), is_group("Finance Team")
        (False, False, True)
    """
    if is_group(name):
        return name  # type: ignore[return-value]
    shown = repr(name) if isinstance(name, str) else f"{type(name).__name__} {name!r}"
    raise ValueError(f"{where} {shown} is not a valid group name: it must start with a letter or digit, then "
                     "letters, digits, spaces or . _ : @ / + # = - (no space at the end), at most 128 characters; "
                     "reserved names such as '__nobody__' cannot be claimed")


@dataclass(frozen=True)
class Document:
    """One source document, already parsed to text.

    `acl` lists the groups that may read it; `("public",)` means everyone. An empty
    `acl` means nobody: a document is only visible when its connector says who may read it.
    """

    id: str
    text: str
    source: str
    uri: str
    title: str
    content_hash: str
    acl: tuple[str, ...] = ()
    updated_at: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document sized for the embedder; `id` is stable across runs."""

    id: str
    doc_id: str
    position: int
    text: str
    title: str
    uri: str
    source: str
    doc_hash: str
    acl: tuple[str, ...]
    section: str = ""
    page: int | None = None
    page_end: int | None = None  # set when the chunk runs on past `page`


@dataclass(frozen=True)
class Principal:
    """Who is asking: retrieval only returns chunks whose ACL shares a group with them.

    Every principal may read public documents. Group names are checked here, where every
    principal is built (config, CLI, API, HTTP server), so a name no access list can hold
    (a reserved sentinel, an empty or malformed name) is refused before anything is searched.

    Example:
        >>> Principal(user="ana", groups=["hr", "slack:payroll"]).groups
        ('hr', 'slack:payroll')
    """

    user: str = "anonymous"
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.groups, str) or not isinstance(self.groups, (tuple, list)):
            raise ValueError(f"Principal.groups must be a tuple of group names, got {self.groups!r}; "
                             "write groups=(\"hr\",), not groups=\"hr\"")
        object.__setattr__(self, "groups", tuple(check_group(g, where="Principal group") for g in self.groups))

    @property
    def readable_groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((PUBLIC_GROUP, *self.groups)))


@dataclass(frozen=True)
class Source:
    """A retrieved chunk as the answer cites it."""

    chunk_id: str
    doc_id: str
    title: str
    uri: str
    score: float
    text: str
    section: str = ""
    page: int | None = None
    page_end: int | None = None
    rerank_score: float | None = None

    @property
    def pages(self) -> range:
        """The pages this chunk's text is on (empty when its document has no pages)."""
        if self.page is None:
            return range(0)
        return range(self.page, (self.page_end or self.page) + 1)


@dataclass(frozen=True)
class Evidence:
    """A sentence of a retrieved source that supports an answer, and where to read it.

    `page` is the page its chunk starts on (a chunk may run on to the next page)."""

    text: str
    chunk_id: str
    doc_id: str
    title: str
    uri: str
    section: str = ""
    page: int | None = None
    score: float = 0.0


@dataclass(frozen=True)
class Answer:
    """What `Project.ask` returns: the text and everything needed to audit it."""

    text: str
    question: str
    mode: str
    prompt: str
    sources: tuple[Source, ...] = ()
    adapter: str | None = None
    latency_s: float = 0.0
    reason: str = ""
    confidence: float | None = None
    abstained: bool = False
    generated_tokens: int = 0
    prompt_tokens: int = 0  # tokens of the prompt the model read (0: no model call, e.g. an abstention)
    truncated: bool = False  # generation hit generator.max_new_tokens before the answer ended
    evidence: tuple[Evidence, ...] = ()  # the source sentences that best support the text
    request_id: str | None = None  # what an outcome names (`record_outcome`, POST /v1/feedback)
    experiment: str | None = None  # the A/B experiment and arm that chose how to answer, if any
    arm: str | None = None
    device: str | None = None  # where the local generator ran (cpu, cuda:0); None for an endpoint
    precision: str | None = None  # its weights: fp32, bf16, 8bit, 4bit-nf4

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "question": self.question,
            "mode": self.mode,
            "reason": self.reason,
            "confidence": self.confidence,
            "abstained": self.abstained,
            "adapter": self.adapter,
            "latency_s": round(self.latency_s, 4),
            "generated_tokens": self.generated_tokens,
            "prompt_tokens": self.prompt_tokens,
            "truncated": self.truncated,
            "prompt": self.prompt,
            "sources": [s.__dict__ for s in self.sources],
            "evidence": [e.__dict__ for e in self.evidence],
            "request_id": self.request_id,
            "experiment": self.experiment,
            "arm": self.arm,
            "device": self.device,
            "precision": self.precision,
        }


@dataclass(frozen=True)
class QAPair:
    """A synthetic question with its answer, about one statement (`fact`) of a chunk."""

    question: str
    answer: str
    kind: str
    fact: str  # the statement the pair asks about; pairs of one fact share it
    parent: str | None = None  # for a paraphrase: the qid of the question it rewords

    @property
    def qid(self) -> str:
        return hashlib.sha256(f"{self.fact}\n{self.question}".encode()).hexdigest()[:12]


def record_to_dict(record: Any) -> dict:
    """A file-backed record (card, manifest) as its JSON form: tuples as lists, and the keys it did
    not know (its `extra` field) written back, so a file round-trips whatever wrote it."""
    out = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name != "extra"}
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    return {**out, **getattr(record, "extra", {})}


def record_from_dict(cls: type, data: Mapping[str, Any]):
    """The inverse of `record_to_dict`: missing keys take their defaults (files of older versions)."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
    known = {k: tuple(v) if isinstance(fields[k].default, tuple) else v for k, v in data.items() if k in fields}
    return cls(**known, extra={k: v for k, v in data.items() if k not in fields})
