"""`ragtune synth` end to end: redact, generate (incrementally), filter, split, format, scan, write a version.

Personal data is redacted from every chunk before any generator sees it, and every row
is scanned again before it is written (framework.dataset.redaction). Generation is the
slow step, so its output is cached per chunk in the dataset version (`generated.jsonl`,
keyed by document id and the redacted chunk text's hash). The next run reuses the pairs
of unchanged chunks, generates only for new or changed chunks, and leaves out chunks of
deleted documents; a change of generator settings regenerates everything. Filters, split and formatting always run
over the whole set, since they depend on the whole index.

Example:
    >>> card = synthesize(chunks, cfg.dataset, root, search=..., teacher=...)  # doctest: +SKIP
    >>> card.incremental                                                        # doctest: +SKIP
    {'previous_version': 'v0001', 'chunks_reused': 40, 'chunks_generated': 2, 'chunks_dropped': 3, ...}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from framework import prompts
from framework.config import DatasetConfig
from framework.dataset import store
from framework.dataset.card import DatasetCard, build_card
from framework.dataset.delta import cache_key
from framework.dataset.filters import (
    FILTERS,
    check_size,
    filter_imports,
    filter_pairs,
    readable_by_audience,
    round_trip_filter,
)
from framework.dataset.formatting import format_examples, raw_text_rows, uniform_row
from framework.dataset.generators import generate_per_chunk
from framework.dataset.imports import read_import
from framework.dataset.paraphrase import llm_paraphrases, template_paraphrases
from framework.dataset.redaction import Redactor
from framework.dataset.split import heldout_documents, split_pairs
from framework.records import Chunk, QAPair, Source

log = logging.getLogger(__name__)
# Bump when the extractive rules change, so cached pairs are regenerated. Redacting chunks before
# generation needed no bump: a chunk holding personal data has a new cache key (its redacted text's
# hash), so it is generated again, and a chunk without any keeps its cached pairs.
_FORMAT_VERSION = 4


def generation_fingerprint(cfg: DatasetConfig, generator_model: str) -> str:
    """What the cached pairs depend on; another value regenerates every chunk."""
    parts = {"v": _FORMAT_VERSION, "generator": cfg.generator, "max_q": cfg.max_questions_per_chunk,
             "answer_form": cfg.answer_form,
             "paraphrases": cfg.paraphrases, "pii": [cfg.pii_mode, cfg.pii_patterns, cfg.pii_phone_region, cfg.pii_allow]}
    if cfg.generator == "llm":
        t = cfg.teacher
        parts["teacher"] = [t.base_url, t.api_model, t.model if t.model != "generator" else generator_model,
                            t.max_new_tokens, t.parse_attempts, prompts.LLM_QA_INSTRUCTION, prompts.LLM_ANSWER_RULES[cfg.answer_form],
                            prompts.LLM_PARAPHRASE_INSTRUCTION]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _previous_cache(root: Path, fingerprint: str) -> tuple[dict[str, dict], dict]:
    """The previous version's cache entries by key (empty if its generator settings differ), and its card."""
    folder = store.resolve_dataset_dir(root.parent, root.name)
    card_path = folder / "card.json"
    if not card_path.is_file():
        return {}, {}
    card = json.loads(card_path.read_text())
    if card.get("generation_fingerprint") != fingerprint:
        log.info("generator settings changed since %s; regenerating every chunk", card.get("version"))
        return {}, card
    return {e["key"]: e for e in store.read_jsonl(folder / store.CACHE_FILE)}, card


def _known_ranks(entries: list[dict], previous: dict, same_search: bool) -> dict:
    """Round-trip ranks of reused chunks, valid only when index and retrieval settings are unchanged."""
    if not same_search:
        return {}
    return {(e["chunk_id"], qid): r for e in entries if e["key"] in previous
            for qid, r in (e.get("round_trip") or {}).items()}


def _store_ranks(entries: list[dict], ranks: dict) -> None:
    by_chunk: dict[str, dict] = {}
    for (chunk_id, qid), rank in ranks.items():
        by_chunk.setdefault(chunk_id, {})[qid] = rank
    for e in entries:
        e["round_trip"] = by_chunk.get(e["chunk_id"], {})


def _generate(chunks: list[Chunk], cfg: DatasetConfig, teacher: Callable, scrub: Redactor, show_progress: bool):
    """Pairs (parents then paraphrases) per chunk, None where the teacher failed; counts. The chunks
    are already redacted; the pairs are scanned again."""
    per_chunk, stats = generate_per_chunk(chunks, cfg, teacher, show_progress=show_progress)
    per_chunk = [None if ps is None else scrub.pairs(ps) for ps in per_chunk]
    if cfg.paraphrases:
        if cfg.generator == "extractive":
            # each fact already comes in several phrasings: templates reword only each family's first question
            variants = [[v for p in ps if p.parent is None for v in template_paraphrases(p, cfg.paraphrases, title=c.title)]
                        if ps else ps for c, ps in zip(chunks, per_chunk)]
        else:
            flat = [(i, p) for i, ps in enumerate(per_chunk) for p in ps or []]
            found, pstats = llm_paraphrases(teacher(), [p for _, p in flat], cfg.paraphrases,
                                            max_new_tokens=cfg.teacher.max_new_tokens,
                                            attempts=cfg.teacher.parse_attempts, show_progress=show_progress)
            stats.update(pstats)
            variants = [[] if ps is not None else None for ps in per_chunk]
            for (i, _), vs in zip(flat, found):
                variants[i].extend(vs)
        per_chunk = [None if ps is None else ps + scrub.pairs(vs) for ps, vs in zip(per_chunk, variants)]
    return per_chunk, stats


def _cache_entries(chunks: list[Chunk], cfg: DatasetConfig, teacher: Callable, scrub: Redactor, previous: dict,
                   show_progress: bool) -> tuple[list[dict], dict, Counter]:
    """One cache entry per eligible chunk: reused when its key is cached, generated otherwise."""
    todo = [c for c in chunks if cache_key(c) not in previous]
    generated, stats = _generate(todo, cfg, teacher, scrub, show_progress) if todo else ([], Counter())
    fresh = {cache_key(c): ps for c, ps in zip(todo, generated)}
    entries = []
    for c in chunks:
        key = cache_key(c)
        if key in previous:
            entries.append({**previous[key], "chunk_id": c.id})
        elif fresh[key] is not None:
            entries.append({"key": key, "doc_id": c.doc_id, "chunk_id": c.id,
                            "pairs": [asdict(p) for p in fresh[key]]})
    current = {cache_key(c) for c in chunks}
    report = {"chunks_reused": len(chunks) - len(todo), "chunks_generated": len(todo),
              "chunks_failed": sum(ps is None for ps in generated),
              "chunks_dropped": sum(k not in current for k in previous),
              "documents_dropped": len({e["doc_id"] for e in previous.values()} - {c.doc_id for c in chunks})}
    return entries, report, stats


def _retrievers(search, eligible: dict[str, Chunk], heldout: set[str]):
    """Round-trip search over the eligible chunks; RAFT distractors also avoid held-out documents.
    Hits carry the eligible chunks' redacted text and title, never the index's."""

    def round_trip(questions: list[str], k: int) -> list[list[Source]]:
        return [[dataclasses.replace(s, text=eligible[s.chunk_id].text, title=eligible[s.chunk_id].title)
                 for s in hits if s.chunk_id in eligible] for hits in search(questions, k)]

    def distractors(q: str, k: int) -> list[Source]:
        return [s for s in round_trip([q], k)[0] if s.doc_id not in heldout]

    return round_trip, distractors


def _http_stats(cfg: DatasetConfig, teacher: Callable, generated_chunks: int) -> dict:
    """Requests, retries and failures of an endpoint teacher, with its last error, for the card."""
    if cfg.generator != "llm" or not generated_chunks or not cfg.teacher.base_url:
        return {}
    t = teacher()
    return {f"http_{k}": v for k, v in t.stats.items()} | ({"http_last_error": t.last_error} if t.last_error else {})


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _filtered(pairs: list, cfg: DatasetConfig, round_trip, known: dict, teacher_stats: Counter, clock: _Clock,
              show_progress: bool):
    """Kept pairs, drop counts per filter (zeros too), scores per pair, round-trip ranks, how many it checked."""
    scores: dict = {}
    kept, found = filter_pairs(pairs, cfg, scores)
    dropped = Counter({name: found[name] for name in FILTERS})
    for name in ("unparseable_reply", "paraphrase_unparseable", "teacher_error"):
        if teacher_stats.get(name):
            dropped[name] = teacher_stats[name]
    checked, ranks = len(kept), {}
    clock.lap("filter")
    if cfg.round_trip:
        kept, dropped["round_trip"], ranks = round_trip_filter(kept, round_trip, cfg.round_trip_top_k,
                                                                  scores=scores, known=known,
                                                                  show_progress=show_progress)
    clock.lap("round_trip")
    return kept, dropped, scores, ranks, checked


def _rows(kept: list, cfg: DatasetConfig, heldout: set[str], distractors, scores: dict, scrub: Redactor,
          imports: list[dict]):
    """Split, then chat rows in both modes for train and closed-book rows for eval, all scanned a last time."""
    train_pairs, eval_triples = split_pairs(kept, cfg.eval_fraction, cfg.seed, heldout_docs=heldout)
    rng = random.Random(cfg.seed)
    train = format_examples(train_pairs, generator=cfg.generator, raft=cfg.raft, retrieve=distractors, rng=rng,
                               scores=scores)
    evals = format_examples([(c, p) for c, p, _ in eval_triples], generator=cfg.generator,
                               raft=cfg.raft.model_copy(update={"fraction": 0.0}), retrieve=distractors, rng=rng,
                               scores=scores, split_kinds=[k for _, _, k in eval_triples])
    trained_chunks = {c.id: c for c, _ in train_pairs}
    raw = raw_text_rows(list(trained_chunks.values()), cfg.raw_text_share, seed=cfg.seed)
    train = [uniform_row(r) for r in scrub.rows(train + raw) + imports]
    return train, [uniform_row(r) for r in scrub.rows(evals)], len(train_pairs)


def synthesize(chunks: list[Chunk], cfg: DatasetConfig, root: Path, *, search: Callable[[list[str], int], list[list[Source]]],
               teacher: Callable, generator_model: str = "", search_fingerprint: str = "",
               show_progress: bool = True) -> DatasetCard:
    """Build and write the next dataset version under `root`; returns its card.

    `search(questions, k)` retrieves for the dataset's audience; `teacher()` returns the
    llm generator's model (called only when something must be generated).
    `search_fingerprint` names the index state and retrieval settings: when the previous
    version has the same one, its round-trip ranks are reused instead of searched again.
    """
    if not chunks:
        raise ValueError("the index is empty; run `ragtune ingest` first")
    clock, scrub = _Clock(), Redactor(cfg)
    imports = [row for path in cfg.imports for row in read_import(Path(path))]  # a bad file fails before any work
    # redacted before anything reads them: generators, filters, RAFT context all see the same text
    eligible = [scrub.chunk(c) for c in chunks if readable_by_audience(c.acl, cfg.audience)]
    fingerprint = generation_fingerprint(cfg, generator_model)
    previous, previous_card = _previous_cache(root, fingerprint)
    search_fingerprint = f"{search_fingerprint}:{cfg.round_trip_top_k}:{sorted(cfg.audience)}"
    entries, incremental, teacher_stats = _cache_entries(eligible, cfg, teacher, scrub, previous, show_progress)
    clock.lap("generate")
    by_id = {c.id: c for c in eligible}
    pairs = [(by_id[e["chunk_id"]], QAPair(**p)) for e in entries for p in e["pairs"]]
    generated = Counter(f"{cfg.generator}:{p.kind}" for _, p in pairs)
    heldout = heldout_documents(Counter(c.doc_id for c in eligible), cfg.heldout_documents_fraction, cfg.seed)
    round_trip, distractors = _retrievers(search, by_id, heldout)
    known = _known_ranks(entries, previous, previous_card.get("search_fingerprint") == search_fingerprint)
    kept, dropped, scores, ranks, checked = _filtered(pairs, cfg, round_trip, known, teacher_stats, clock,
                                                      show_progress)
    _store_ranks(entries, ranks)
    imports = scrub.rows(filter_imports(imports, cfg, dropped))
    generated.update(r["generator"] for r in imports)
    train, evals, n_train_pairs = _rows(kept, cfg, heldout, distractors, scores, scrub, imports)
    dropped["pii"] += scrub.dropped
    check_size(n_train_pairs + len(imports), dropped, len(pairs), cfg.min_examples)
    clock.lap("format")
    extra = {
        "generation_fingerprint": fingerprint,
        "search_fingerprint": search_fingerprint,
        "incremental": {"previous_version": previous_card.get("version"), **incremental},
        "teacher": {**teacher_stats, **_http_stats(cfg, teacher, incremental["chunks_generated"])},
        "round_trip": {"enabled": cfg.round_trip, "top_k": cfg.round_trip_top_k, "checked": checked,
                       "reused": sum(key in known for key in ranks),
                       "passed": checked - dropped["round_trip"] if cfg.round_trip else None},
        "pii": scrub.report(),
        "heldout_documents": sorted(heldout),
        "seconds": clock.laps,
    }
    card = build_card(cfg, chunks=len(chunks), eligible=len(eligible), generated=generated, dropped=dropped,
                         kept=kept, train=train, evals=evals, extra=extra)
    return DatasetCard.from_dict(store.write_version(root, train, evals, card, entries))
