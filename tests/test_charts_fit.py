"""Charts of A/B and evaluation reports: every title and label inside the picture, and no matplotlib
warning (they print library install paths into a user's report run), whatever the names and data."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

from framework.config import ExperimentConfig
from framework.evaluation.charts import metrics_figure, quality_latency_figure
from framework.evaluation.results import METRICS, EvaluationResult, ModeResult
from framework.evaluation.stats import NA, Estimate
from framework.experiments.charts import outcome_figure
from framework.experiments.report import build_report
from framework.experiments.store import Exposure

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def outside(fig) -> list[str]:
    """The texts of `fig` (titles, labels, drawn tick labels, notes) that do not lie wholly inside it."""
    fig.canvas.draw()
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    texts = [t for t in fig.texts + [t for ax in fig.axes for t in ax.texts]]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        texts += [t.label1 for axis in (ax.xaxis, ax.yaxis) for t in axis._update_ticks()]
    if fig._suptitle is not None:
        texts.append(fig._suptitle)
    bad = []
    for t in texts:
        if not t.get_text().strip():
            continue
        ext = t.get_window_extent(renderer)
        if ext.x0 < box.x0 - 1 or ext.x1 > box.x1 + 1 or ext.y0 < box.y0 - 1 or ext.y1 > box.y1 + 1:
            bad.append(t.get_text())
    return bad


def _report(name: str, arms: list[str], exposures: int, outcomes: bool = True):
    cfg = ExperimentConfig.model_validate({"name": name, "arms": [{"name": a, "mode": "rag"} for a in arms]})
    ex = [Exposure(f"r{i}", name, arms[0] if exposures < 4 else arms[i % len(arms)], f"u{i}", "rag", None,
                   0.4 + 0.01 * i, 30 + i, 8, T0) for i in range(exposures)]
    out = {(f"r{i}", "customer_satisfaction_rating"): float(i % 5) for i in range(exposures)} if outcomes else {}
    return build_report(cfg, ex, out)


def test_ab_charts_fit_long_names_and_arms_without_data_without_warnings():
    cases = [_report("support-answer-style-2026-q4-extractive-versus-generative", ["control", "extractive-short",
                                                                                     "generative-long"], 40),
             _report("greeting", ["control", "tuned"], 1),  # one arm has no data at all
             _report("greeting", ["control", "tuned"], 0, outcomes=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a matplotlib UserWarning fails the test
        for report in cases:
            for metric in report.metrics:
                fig = outcome_figure(report, metric)
                assert outside(fig) == [], (report.experiment, metric.name)


def _evaluation(labels: list[str]) -> EvaluationResult:
    def row(i: int, label: str) -> ModeResult:
        metrics = {m: Estimate(0.3 + 0.05 * i, 0.25 + 0.05 * i, 0.35 + 0.05 * i, 40) for m in METRICS}
        metrics["groundedness"] = NA
        split = {"changed-facts-since-the-previous-adapter-version": metrics}
        return ModeResult(label=label, mode="rag", metrics=metrics, by_split_kind=split)

    return EvaluationResult(results=tuple(row(i, label) for i, label in enumerate(labels)), questions=40, baseline=labels[0])


def test_evaluation_charts_fit_long_row_labels_without_warnings():
    result = _evaluation(["rag", "combined@support-team-adapter@v0012", "finetuned@support-team-adapter@v0012"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fig in (metrics_figure(result), metrics_figure(result, "changed-facts-since-the-previous-adapter-version"),
                    quality_latency_figure(result)):
            assert outside(fig) == []
