"""PNG charts of an evaluation (matplotlib, object API on the Agg canvas: no global backend switch).

- `metrics.png`: one panel per metric, a bar per row with its 95% interval as an error bar
  (and `metrics_<split kind>.png` for each split kind);
- `quality_latency.png`: token F1 and new-word recall against median latency, each point
  with its intervals on both axes.

Example:
    >>> write_charts(result, Path("reports/20261201T120000Z"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from framework.evaluation.results import ALL, LOWER_IS_BETTER, METRICS, EvaluationResult

UNBOUNDED = ("latency_p50_s", "latency_p95_s", "tokens_per_s")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _bars(ax, result: EvaluationResult, metric: str, split_kind: str | None) -> None:
    rows = [r for r in result.results if not r.refused]
    ests = [result.estimate(r.label, metric, split_kind) for r in rows]
    xs = range(len(rows))
    values = [e.value or 0.0 for e in ests]
    errors = [[(e.value - e.low) if e.value is not None else 0 for e in ests],
              [(e.high - e.value) if e.value is not None else 0 for e in ests]]
    ax.bar(xs, values, yerr=errors, capsize=3, color=[f"C{i}" for i in xs])
    for x, e in zip(xs, ests):
        if e.value is None:
            ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), [r.label for r in rows], rotation=30, ha="right", fontsize=7)
    if metric not in UNBOUNDED:  # shares and similarities: the same 0-1 scale in every panel
        ax.set_ylim(min([0.0] + [e.low for e in ests if e.low is not None]), 1.0)
    ax.set_title(metric + (" (lower is better)" if metric in LOWER_IS_BETTER else ""), fontsize=9)


def metrics_chart(result: EvaluationResult, path: Path, split_kind: str | None = ALL) -> Path:
    metrics_figure(result, split_kind).savefig(path)
    return path


def metrics_figure(result: EvaluationResult, split_kind: str | None = ALL):
    """One panel per metric, as a matplotlib Figure."""
    cols = 4
    rows = math.ceil(len(METRICS) / cols)
    fig = _figure(4 * cols, 3 * rows)
    for i, metric in enumerate(METRICS):
        _bars(fig.add_subplot(rows, cols, i + 1), result, metric, split_kind)
    where = "all questions" if split_kind is ALL else f"{split_kind} questions"
    fig.suptitle(f"{where}: value and 95% interval per row")
    return fig


def quality_latency_chart(result: EvaluationResult, path: Path) -> Path:
    quality_latency_figure(result).savefig(path)
    return path


def quality_latency_figure(result: EvaluationResult):
    """Token F1 and new-word recall against median latency, as a matplotlib Figure."""
    fig = _figure(11, 4.5)
    for i, metric in enumerate(("token_f1", "new_word_recall")):
        ax = fig.add_subplot(1, 2, i + 1)
        for j, r in enumerate(x for x in result.results if not x.refused):
            q, t = result.estimate(r.label, metric), result.estimate(r.label, "latency_p50_s")
            if q.value is None or t.value is None:
                continue
            ax.errorbar([t.value], [q.value], xerr=[[t.value - t.low], [t.high - t.value]],
                        yerr=[[q.value - q.low], [q.high - q.value]], fmt="o", color=f"C{j}", capsize=3, label=r.label)
            ax.annotate(r.label, (t.value, q.value), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlim(left=0.0)
        ax.set_xlabel("median latency, s per question")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} against latency")
    return fig


def write_charts(result: EvaluationResult, folder: Path) -> list[Path]:
    """Every chart of the result into `folder`; returns their paths."""
    paths = [metrics_chart(result, folder / "metrics.png"), quality_latency_chart(result, folder / "quality_latency.png")]
    for kind in sorted({k for r in result.results for k in r.by_split_kind}):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", kind)
        paths.append(metrics_chart(result, folder / f"metrics_{safe}.png", kind))
    return paths
