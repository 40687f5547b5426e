"""Progress when stderr is not a terminal (a log file, a pipe): plain lines with the rate and the time
left, at every tenth of the work or every 30 s, never a silent bar."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from framework.runtime import progress
from framework.training.callbacks import ProgressCallback


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _log_console(monkeypatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(progress, "_console", Console(file=buffer, width=200))  # a file: not a terminal
    return buffer


def test_track_into_a_log_prints_a_line_per_tenth_with_rate_and_time_left(monkeypatch):
    buffer = _log_console(monkeypatch)
    clock = Clock()
    monkeypatch.setattr(progress.PlainProgress.__init__, "__kwdefaults__",
                        {**progress.PlainProgress.__init__.__kwdefaults__, "clock": clock})
    for _ in progress.track(range(200), "embed chunks"):
        clock.now += 0.1  # 10 items per second: 20 s in all, never 30 s between lines
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "embed chunks: 0/200 (0%)"
    assert len(lines) == 11 and lines[-1].startswith("embed chunks: 200/200 (100%), 10/s, 0:20 elapsed"), lines
    assert lines[5] == "embed chunks: 100/200 (50%), 10/s, 0:10 elapsed, about 0:10 left"


def test_slow_work_prints_every_30_seconds_between_tenths():
    buffer, clock = io.StringIO(), Clock()
    bar = progress.PlainProgress(console=Console(file=buffer, width=200), clock=clock)
    task = bar.add_task("parse", total=1000)
    for _ in range(40):  # 40 items, 10 s each: 4% of the work in 400 s
        clock.now += 10
        bar.advance(task)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 1 + 13  # the first line, then one per 30 s (3 items)
    assert lines[1] == "parse: 3/1000 (0%), 0.1/s, 0:30 elapsed, about 2:46:10 left"  # 997 left at 0.1/s


def test_training_into_a_log_reports_steps_loss_tokens_per_second_and_eval_loss(monkeypatch):
    buffer = _log_console(monkeypatch)
    throughput = SimpleNamespace(tokens_per_second=1234.4)
    callback = ProgressCallback(throughput, "finetune")
    state = SimpleNamespace(is_world_process_zero=True, max_steps=20, global_step=0, epoch=0.0)
    callback.on_train_begin(None, state, None)
    for step in range(1, 21):
        state.global_step, state.epoch = step, step / 10
        callback.on_log(None, state, None, logs={"loss": 2.0 / step})
        callback.on_step_end(None, state, None)
        if step == 10:
            callback.on_log(None, state, None, logs={"eval_loss": 0.5})
    callback.on_train_end(None, state, None)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "finetune: 0/20 (0%)"
    assert any(line.startswith("finetune: 2/20 (10%), ") and line.endswith("loss 1.0000, 1234 tok/s")
               for line in lines), lines
    assert "epoch 1.00: eval loss 0.5000" in lines
    assert lines[-1].startswith("finetune: 20/20 (100%)") and len(lines) == 1 + 10 + 1, lines


def test_a_value_updated_after_the_last_line_is_printed_when_the_work_ends():
    from rich.progress import TextColumn

    buffer, clock = io.StringIO(), Clock()
    bar = progress.PlainProgress(TextColumn("loss {task.fields[loss]}"), console=Console(file=buffer, width=200),
                                 clock=clock)
    task = bar.add_task("finetune", total=2, loss="-")
    for _ in range(2):
        clock.now += 1
        bar.update(task, advance=1)
    bar.update(task, loss="0.5000")  # the trainer logs the loss after the last step
    bar.stop()
    lines = buffer.getvalue().splitlines()
    assert lines[-1] == "finetune: 2/2 (100%), 1/s, 0:02 elapsed, loss 0.5000" and len(lines) == 4, lines
