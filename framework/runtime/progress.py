"""Progress of long work, on stderr so `--json` output on stdout stays clean.

On a terminal: a rich progress bar. When stderr is not a terminal (a log file, a pipe, a
scheduler capturing output), a bar shows nothing until it ends, so a 40-minute training run looked
dead; there the same calls print plain lines instead, one each time another `PLAIN_EVERY_PERCENT`
of the work is done or `PLAIN_EVERY_S` seconds have passed, with the rate and the time left:

    finetune: 120/1000 (12%), 0.84/s, 2:23 elapsed, about 17:28 left, loss 1.2345

Example:
    >>> for doc in track(["a.md", "b.md"], "ingest docs", enabled=False):
    ...     pass
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Callable, Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
_console = Console(stderr=True)
PLAIN_EVERY_PERCENT = 10
PLAIN_EVERY_S = 30.0


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class PlainProgress:
    """The part of rich's Progress that ragtune uses (add_task, update, advance, start/stop, `console`), as
    plain log lines: the first and last state of each task, and one line per `every_percent` of the total
    or per `every_s` seconds, whichever comes first."""

    def __init__(self, *extra: TextColumn, console: Console, every_percent: float = PLAIN_EVERY_PERCENT,
                 every_s: float = PLAIN_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.extra = extra
        self.console = console
        self.every_percent = every_percent
        self.every_s = every_s
        self.clock = clock
        self.tasks: list[SimpleNamespace] = []

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for task in self.tasks:
            if task.dirty:  # the last state (a loss logged after the last line) is never left unsaid
                self._line(task)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        now = self.clock()
        task = SimpleNamespace(description=description, total=total, completed=completed, start_count=completed,
                               fields=fields, started=now, printed=now, dirty=False)
        self.tasks.append(task)
        self._line(task)
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, completed: float | None = None, advance: float | None = None,
               total: float | None = None, **fields) -> None:
        task = self.tasks[task_id]
        before = task.completed
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        task.dirty = task.dirty or task.completed != before or any(task.fields.get(k) != v for k, v in fields.items())
        task.fields.update(fields)
        if task.completed != before and self._due(task, before):
            self._line(task)

    def _due(self, task: SimpleNamespace, before: float) -> bool:
        if self.clock() - task.printed >= self.every_s or (task.total and task.completed >= task.total):
            return True
        if not task.total:
            return False
        step = task.total * self.every_percent / 100
        return int(task.completed // step) > int(before // step)

    def _line(self, task: SimpleNamespace) -> None:
        now = self.clock()
        elapsed = now - task.started
        done = task.completed - task.start_count
        parts = [f"{task.completed:g}/{task.total:g} ({100 * task.completed / task.total:.0f}%)" if task.total
                 else f"{task.completed:g}"]
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            parts.append(f"{rate:.3g}/s")
            parts.append(f"{_clock_text(elapsed)} elapsed")
            if task.total and task.completed < task.total:
                parts.append(f"about {_clock_text((task.total - task.completed) / rate)} left")
        for column in self.extra:
            text = column.text_format.format(task=task)
            if text.strip() and not text.startswith("- ") and not text.endswith(" -"):  # "-": no value yet
                parts.append(text)
        self.console.print(f"{task.description}: " + ", ".join(parts), highlight=False, markup=False)
        task.printed, task.dirty = now, False


def _progress(*extra: TextColumn) -> Progress | PlainProgress:
    if not _console.is_terminal:
        return PlainProgress(*extra, console=_console)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *extra,
                    TimeElapsedColumn(), console=_console, transient=False)


def track(items: Iterable[T], description: str, *, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    if not enabled:
        yield from items
        return
    with _progress() as bar:
        task = bar.add_task(description, total=total if total is not None else len(items))  # type: ignore[arg-type]
        for item in items:
            yield item
            bar.advance(task)


def progress_bar(*extra: TextColumn) -> Progress | PlainProgress:
    """A bar for work reported step by step (e.g. training), with extra fields after the count; plain lines
    when stderr is not a terminal."""
    return _progress(*extra)
