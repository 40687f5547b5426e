"""The generation worker: the one owner of the model, answering micro-batches grouped by adapter.

Enabling an adapter changes state shared by the whole model (peft's `set_adapter` /
`disable_adapter`), so two threads generating at once could each run on the other's
adapter, and a user outside a restricted adapter's audience could get an answer made
with it. Here only one thread ever touches the generator: callers (`Router.answer`, the
HTTP server's request threads, the synthetic-data teacher through `WorkerTeacher`, any
number of Python threads) `submit` conversations and
wait on futures; the worker takes them from per-group queues and runs each batch with
exactly one adapter (or none: `prompt_only` and `rag` share the "no adapter" group).
Loading an adapter is done by the worker too, between batches.

Scheduling, and the wait bound. Requests are grouped by adapter (each request keeps its
own token budget inside the batch: a row stops at its own budget, so its answer is the one it
would get alone). Groups
wait in a round-robin line: the worker takes the group at the head, runs up to
`max_batch` of its requests (oldest first) in one `generator.complete` call, and puts
the group back at the tail if requests remain; a group that appears joins at the tail.
So between two batches of one group, every other waiting group runs at most one batch:
a request waits for the batch in flight, then at most one batch (of at most `max_batch`
requests) of each other group, before its own group runs; if more than `max_batch`
requests of its own group are ahead of it, one such round per `max_batch` of them. No
group can starve another, however much traffic it gets. The worker adds no delay: a
lone request runs at once, and under load the queue fills while a batch runs, so the
next batch is larger and throughput rises with load. The generator may answer a batch in several
forward passes (one per padded prompt length, `generator.pad_multiple`), so that an answer never
depends on what it was batched with.

Example:
    >>> worker = GenerationWorker(generator, max_batch=8)                              # doctest: +SKIP
    >>> worker.submit(closed_book("Hi"), adapter=None, max_new_tokens=32).result()     # doctest: +SKIP
    Generation(text='Hello!', tokens=3, truncated=False)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from framework.serving.generator import Generation, Generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One conversation to answer; `adapter` is (key, path), loaded by the worker if needed."""

    conversation: list[dict]
    adapter: tuple[str, Path] | None
    max_new_tokens: int
    future: Future = field(default_factory=Future)
    stop: tuple[str, ...] = ()  # strings that end generation early (OpenAI's `stop`)
    queued_at: float = field(default_factory=time.perf_counter)


class WorkerClosedError(RuntimeError):
    pass


class GenerationWorker:
    """The thread starts with the first request and ends after `idle_s` without one (the next request starts
    it again), so a Project that is dropped releases its model."""

    def __init__(self, generator: Generator, *, max_batch: int = 8, idle_s: float = 10.0) -> None:
        self.generator = generator
        self.max_batch = max_batch
        self.idle_s = idle_s
        self._groups: OrderedDict[str | None, deque[Job]] = OrderedDict()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batch_sizes: Counter[int] = Counter()  # size -> batches run (for /metrics)
        self.batches: list[tuple[str | None, int]] = []  # (adapter key, size) of recent batches, newest last

    def submit(self, conversation: list[dict], *, adapter: tuple[str, Path] | None,
               max_new_tokens: int, stop: tuple[str, ...] = ()) -> Future:
        """Queue one conversation; the future resolves to its Generation (or the error of its batch)."""
        job = Job(conversation, adapter, max_new_tokens, stop=tuple(stop))
        with self._cond:
            if self._closed:
                raise WorkerClosedError("the generation worker is closed; build a new Project to answer again")
            self._groups.setdefault(adapter[0] if adapter else None, deque()).append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ragtune-generation", daemon=True)
                self._thread.start()
            self._cond.notify()
        return job.future

    def depth(self) -> int:
        """Requests waiting (not counting the batch in flight)."""
        with self._cond:
            return sum(len(q) for q in self._groups.values())

    def close(self) -> None:
        """Stop after the queued requests are answered."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            if not self._groups and not self._closed:
                self._cond.wait_for(lambda: self._groups or self._closed, timeout=self.idle_s)
            if not self._groups:
                self._thread = None  # idle or closed: the next submit starts a new thread
                return None
            key, queue = next(iter(self._groups.items()))
            batch = [queue.popleft() for _ in range(min(self.max_batch, len(queue)))]
            if queue:
                self._groups.move_to_end(key)
            else:
                del self._groups[key]
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]
            if live:
                self._answer(live)

    def _answer(self, batch: list[Job]) -> None:
        adapter = batch[0].adapter
        try:
            if adapter is not None and not self.generator.has_adapter(adapter[0]):
                self.generator.load_adapter(*adapter)
            out = self.generator.complete([j.conversation for j in batch], adapter=adapter[0] if adapter else None,
                                          max_new_tokens=[j.max_new_tokens for j in batch],
                                          # only when asked, so a generator without `stop` keeps working
                                          **({"stop": [j.stop for j in batch]} if any(j.stop for j in batch) else {}))
        except Exception as err:  # the batch's callers get the error; the worker keeps serving
            log.warning("generation failed for a batch of %d: %s", len(batch), err)
            for job in batch:
                job.future.set_exception(err)
            return
        with self._cond:
            self.batch_sizes[len(batch)] += 1
            self.batches = [*self.batches[-999:], (adapter[0] if adapter else None, len(batch))]
        for job, generation in zip(batch, out):
            job.future.set_result(generation)


class WorkerTeacher:
    """The serving model as the synthetic-data teacher (`dataset.teacher.model: generator`), asked through its
    worker: the teacher's conversations queue beside the answers like any caller's, so synthesis never switches
    adapters on the model under a batch the worker is answering. Same `generate` as the other teachers.

    Example:
        >>> teacher = WorkerTeacher(project.worker)                               # doctest: +SKIP
        >>> teacher.generate([closed_book("Write a question")], max_new_tokens=32)  # doctest: +SKIP
    """

    def __init__(self, worker: GenerationWorker) -> None:
        self.worker = worker

    def generate(self, conversations: list[list[dict]], *, adapter: str | None = None,
                 max_new_tokens: int = 64) -> list[str]:
        """One reply per conversation, in order, from the base model (a teacher uses no adapter)."""
        if adapter is not None:
            raise ValueError(f"the serving model teaches without an adapter; got adapter {adapter!r}")
        futures = [self.worker.submit(c, adapter=None, max_new_tokens=max_new_tokens) for c in conversations]
        return [g.text for g in results(futures)]


def results(futures: list[Future]) -> list[Generation]:
    """Wait for every future; the first error is raised after all have finished."""
    errors = [f.exception() for f in futures]
    if first := next((e for e in errors if e is not None), None):
        raise first
    return [f.result() for f in futures]
