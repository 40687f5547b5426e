"""A PNG per metric of an A/B report: each arm's value with its 95% interval, the control's value as a
dashed line (matplotlib's object API on the Agg canvas: no global backend switch).

Example:
    >>> outcome_chart(report, report.metrics[0], Path("reports/ab/greeting/thumbs_up.png"))  # doctest: +SKIP
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from framework.experiments.report import ExperimentReport, Metric


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def fitted(text: str, width_in: float, fontsize: float) -> str:
    """`text` wrapped onto lines that fit `width_in` inches at `fontsize` points (a clipped title says less)."""
    per_line = max(16, int(width_in * 72 / (fontsize * 0.62)))
    return "\n".join(textwrap.wrap(text, per_line, break_on_hyphens=False)) or text


def outcome_chart(report: ExperimentReport, metric: Metric, path: Path) -> Path:
    outcome_figure(report, metric).savefig(path)
    return path


def outcome_figure(report: ExperimentReport, metric: Metric):
    """The chart of one metric as a matplotlib Figure: every text inside it, whatever the names' lengths."""
    width = 1.8 + 1.2 * len(metric.arms)
    fig = _figure(width, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for x, (arm, est) in enumerate(metric.arms.items()):
        if est.value is None:  # at mid-height of the axes: a data y of 0 can lie far outside them
            ax.text(x, 0.5, "no data", ha="center", va="center", fontsize=8, transform=ax.get_xaxis_transform())
            continue
        low, high = est.low if est.low is not None else est.value, est.high if est.high is not None else est.value
        ax.errorbar([x], [est.value], yerr=[[est.value - low], [high - est.value]], fmt="o", capsize=5, color=f"C{x}")
        ax.annotate(f"{est.value:.3g}\nn={est.n}", (x, est.value), textcoords="offset points", xytext=(8, -4),
                    fontsize=7)
    control = metric.arms.get(report.control)
    if control is not None and control.value is not None:
        ax.axhline(control.value, linestyle="--", linewidth=0.8, color="grey")
    ax.set_xticks(range(len(metric.arms)), [fitted(a + (" (control)" if a == report.control else ""), 1.1, 8)
                                            for a in metric.arms], fontsize=8)
    ax.set_xlim(-0.6, len(metric.arms) - 0.4)
    if metric.kind == "rate":
        ax.set_ylim(0.0, 1.0)
    ax.set_ylabel(fitted(metric.name, 3.0, 10))
    ax.set_title(fitted(f"{report.experiment}: {metric.name} per arm ({metric.kind}), 95% interval", width - 0.3, 9),
                 fontsize=9)
    return fig


def chart_name(metric: Metric) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric.name) + ".png"
