"""A PNG per metric of an A/B report: each arm's value with its 95% interval, the control's value as a
dashed line (matplotlib's object API on the Agg canvas: no global backend switch).

Example:
    >>> outcome_chart(report, report.metrics[0], Path("reports/ab/greeting/thumbs_up.png"))  # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path

from framework.experiments.report import ExperimentReport, Metric


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def outcome_chart(report: ExperimentReport, metric: Metric, path: Path) -> Path:
    fig = _figure(1.8 + 1.2 * len(metric.arms), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for x, (arm, est) in enumerate(metric.arms.items()):
        if est.value is None:
            ax.text(x, 0, "no data", ha="center", va="bottom", fontsize=8)
            continue
        low, high = est.low if est.low is not None else est.value, est.high if est.high is not None else est.value
        ax.errorbar([x], [est.value], yerr=[[est.value - low], [high - est.value]], fmt="o", capsize=5, color=f"C{x}")
        ax.annotate(f"{est.value:.3g}\nn={est.n}", (x, est.value), textcoords="offset points", xytext=(8, -4),
                    fontsize=7)
    control = metric.arms.get(report.control)
    if control is not None and control.value is not None:
        ax.axhline(control.value, linestyle="--", linewidth=0.8, color="grey")
    ax.set_xticks(range(len(metric.arms)), [a + (" (control)" if a == report.control else "") for a in metric.arms],
                  fontsize=8)
    ax.set_xlim(-0.6, len(metric.arms) - 0.4)
    if metric.kind == "rate":
        ax.set_ylim(0.0, 1.0)
    ax.set_ylabel(metric.name)
    ax.set_title(f"{report.experiment}: {metric.name} per arm ({metric.kind}), 95% interval", fontsize=9)
    fig.savefig(path)
    return path


def chart_name(metric: Metric) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric.name) + ".png"
