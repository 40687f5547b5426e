"""Parse documents in worker processes, each one bounded in time.

A parser that hangs on a pathological file, or crashes the interpreter inside a C
extension, must cost one report entry, never the run. Workers are forked from the
ingest process after the connector's scan, so they already hold every `SourceItem`
(closures included, nothing is pickled on the way in): the parent sends an item's
position, the worker calls `item.read()` and sends the Document back. A worker that
passes `timeout_s` on one document is killed and replaced by a fresh fork; one that
dies is replaced the same way. A dispatcher thread keeps the workers busy while the
caller chunks and embeds, so parsing overlaps embedding. `workers=0` parses in the
calling process, without a time limit.

Each result carries what the parse said besides its outcome: the warnings libraries raised
or logged meanwhile (framework.ingest.capture), for the document's report entry, and an error
that names the cause once: a `DocumentError`'s message as is, anything else with its class.

Example:
    >>> with ParsePool(items, workers=1, timeout_s=60) as pool:   # doctest: +SKIP
    ...     for position, document, error, seconds, warnings in pool.results():
    ...         ...
"""

from __future__ import annotations

import faulthandler
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Iterator, NamedTuple, Sequence

from framework.ingest.capture import captured
from framework.ingest.contract import DocumentError, SourceItem
from framework.records import Document

log = logging.getLogger(__name__)


class Result(NamedTuple):
    position: int
    document: Document | None
    error: str | None
    seconds: float
    warnings: tuple[str, ...] = ()


def error_reason(err: Exception) -> str:
    """The report's reason for a parser exception: the cause once, and what to do."""
    if isinstance(err, DocumentError):
        return str(err)
    return (f"the parser failed ({type(err).__name__}: {err}); the file may be corrupt: open and save it again, "
            "or exclude it")


def parse(item: SourceItem) -> tuple[str, "Document | str", tuple[str, ...]]:
    """("ok", document) or ("error", reason), with the warnings raised meanwhile."""
    with captured() as found:
        try:
            outcome = ("ok", item.read())
        except Exception as err:  # any parser error is a report entry for this document only
            outcome = ("error", error_reason(err))
    return (*outcome, tuple(found))


def _serve(items: Sequence[SourceItem], conn: Connection, inherited: list[Connection], parent_pid: int) -> None:
    """The worker's loop: parse the item at each position received, answer with the outcome.

    It closes the parent's pipe ends it inherited, so the parent's death reads as end-of-file
    here, and it also checks for that death, so no worker outlives a killed ingest."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    faulthandler.disable()  # a crash is reported by the parent in one line, not as a stack dump here
    for other in inherited:
        other.close()
    while True:
        try:
            while not conn.poll(1.0):
                if os.getppid() != parent_pid:
                    return
            position = conn.recv()
        except (EOFError, OSError):
            return
        if position is None:
            return
        start = time.perf_counter()
        status, value, found = parse(items[position])
        try:
            conn.send((status, value, time.perf_counter() - start, found))
        except Exception as err:  # e.g. a connector's Document that cannot be pickled
            conn.send(("error", f"the parsed document could not be sent back ({type(err).__name__}: {err}); "
                       "report this connector's bug", time.perf_counter() - start, found))


@dataclass
class _Worker:
    process: multiprocessing.Process
    conn: Connection
    position: int | None = None
    started: float = 0.0


class ParsePool:
    def __init__(self, items: Sequence[SourceItem], *, workers: int = 1, timeout_s: float = 60.0,
                 lookahead: int = 8) -> None:
        if workers < 0 or timeout_s <= 0:
            raise ValueError(f"ParsePool needs workers >= 0 and timeout_s > 0, got {workers} and {timeout_s}")
        self.items = items
        self.workers = workers
        self.timeout_s = timeout_s
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, lookahead))
        self._stop = threading.Event()
        self._pool: list[_Worker] = []
        self._thread: threading.Thread | None = None
        self._ctx = multiprocessing.get_context("fork")

    def __enter__(self) -> "ParsePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def results(self) -> Iterator[Result]:
        """A Result (position, document or None, error or None, seconds, warnings) per item, in completion order."""
        if self.workers == 0 or not self.items:
            yield from (self._parse_here(i) for i in range(len(self.items)))
            return
        self._pool = [self._fork() for _ in range(min(self.workers, len(self.items)))]
        self._thread = threading.Thread(target=self._dispatch, name="ragtune-parse", daemon=True)
        self._thread.start()
        for _ in range(len(self.items)):
            result = self._queue.get()
            if isinstance(result, BaseException):
                raise result
            yield result

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for worker in self._pool:
            _end(worker)
        self._pool = []

    # -- in the calling process --------------------------------------------------------------------
    def _parse_here(self, position: int) -> Result:
        start = time.perf_counter()
        status, value, found = parse(self.items[position])
        doc, error = (value, None) if status == "ok" else (None, value)
        return Result(position, doc, error, time.perf_counter() - start, found)

    # -- the dispatcher thread ---------------------------------------------------------------------
    def _fork(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        inherited = [parent] + [w.conn for w in self._pool]
        process = self._ctx.Process(target=_serve, args=(self.items, child, inherited, os.getpid()), daemon=True,
                                    name="ragtune-parser")
        process.start()
        child.close()
        return _Worker(process, parent)

    def _dispatch(self) -> None:
        try:
            todo = deque(range(len(self.items)))
            while (todo or any(w.position is not None for w in self._pool)) and not self._stop.is_set():
                for worker in self._pool:
                    if worker.position is None and todo:
                        worker.position, worker.started = todo.popleft(), time.monotonic()
                        try:
                            worker.conn.send(worker.position)
                        except OSError:  # it died between two documents: fork a fresh one for this one
                            todo.appendleft(worker.position)
                            _end(worker)
                            self._pool[self._pool.index(worker)] = self._fork()
                self._collect()
        except BaseException as err:  # hand any failure of the pool itself to the caller's thread
            self._put(err)

    def _collect(self) -> None:
        busy = [w for w in self._pool if w.position is not None]
        if not busy:
            return
        deadline = min(w.started for w in busy) + self.timeout_s
        ready = set(wait([w.conn for w in busy], timeout=max(0.0, min(deadline - time.monotonic(), 0.5))))
        for i, worker in enumerate(self._pool):
            if worker.position is None:
                continue
            if worker.conn in ready:
                try:
                    status, value, seconds, found = worker.conn.recv()
                except (EOFError, OSError):
                    self._replace(i, f"the parser crashed ({_exit_reason(worker.process)}); the file may be corrupt: "
                                     "open and save it again, or exclude it")
                    continue
                doc, error = (value, None) if status == "ok" else (None, value)
                self._put(Result(worker.position, doc, error, seconds, found))
                worker.position = None
            elif time.monotonic() - worker.started > self.timeout_s:
                self._replace(i, f"parsing took longer than {self.timeout_s:g}s (ingest.parse_timeout_s) and was "
                                 "stopped; the file may be pathological: exclude it, or raise the limit")

    def _replace(self, i: int, reason: str) -> None:
        worker = self._pool[i]
        seconds = time.monotonic() - worker.started
        _end(worker)
        log.warning("parser worker replaced: %s", reason)
        self._pool[i] = self._fork()
        self._put(Result(worker.position, None, reason, seconds))

    def _put(self, result) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(result, timeout=0.2)
                return
            except queue.Full:
                continue


def _end(worker: _Worker) -> None:
    if worker.process.is_alive():
        worker.process.kill()
    worker.process.join(timeout=5)
    worker.conn.close()


def _exit_reason(process: multiprocessing.Process) -> str:
    process.join(timeout=5)
    code = process.exitcode
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"
