"""An A/B report as files: report.md for people, report.json for scripts, a PNG per metric.

Example:
    >>> write_report(report, Path(".ragtune/reports/ab/greeting/20261201T120000Z"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from framework.experiments.charts import chart_name, outcome_chart
from framework.experiments.report import ExperimentReport, Metric
from framework.experiments.stats import Difference, Interval


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}" if abs(x) >= 1000 else f"{x:.{digits}f}"


def _interval(est: Interval) -> str:
    if est.value is None:
        return "no data"
    band = f" [{_num(est.low)}, {_num(est.high)}]" if est.low is not None else ""
    return f"{_num(est.value)}{band} (n={est.n})"


def _difference(d: Difference) -> str:
    if d.value is None:
        return "n/a"
    band = f" [{_num(d.low)}, {_num(d.high)}]" if d.low is not None else ""
    p = "n/a" if d.p_value is None else f"{d.p_value:.3g}"
    return f"{d.value:+.3f}{band}, p={p}"


def _metric_table(report: ExperimentReport, m: Metric) -> list[str]:
    test = "two-proportion z-test" if m.kind == "rate" else "Welch's t-test"
    lines = [f"### {m.name} ({m.kind}{', from the exposure log' if m.source == 'exposure' else ''})", "",
             f"| arm | value [95% interval] | coverage | vs {report.control} [95% interval], {test} |",
             "|---|---|---|---|"]
    for arm, est in m.arms.items():
        diff = "control" if arm == report.control else _difference(m.vs_control[arm])
        lines.append(f"| {arm} | {_interval(est)} | {m.coverage.get(arm, 0):.0%} | {diff} |")
    return lines + [""]


def to_markdown(report: ExperimentReport) -> str:
    srm = report.srm
    unit = "one per unit (the mean of its requests)" if report.per_unit else "one per request"
    lines = [f"# A/B report: {report.experiment}", "",
             f"{report.created_at}; control arm: {report.control}; observations: {unit}", ""]
    lines += [f"> **{n}**" if n.startswith("SAMPLE RATIO") else f"> {n}" for n in report.notes]
    lines += ["", "| arm | mode | weight | exposures | units | adapters |", "|---|---|---|---|---|---|"]
    lines += [f"| {a.name} | {a.mode or '(not configured)'} | {a.weight if a.weight is not None else '-'} | "
              f"{a.exposures} | {a.units} | {', '.join(a.adapters) or '-'} |" for a in report.arms]
    verdict = "n/a (no units)" if srm.p_value is None else \
        f"chi-square {srm.chi2:.3f}, p = {srm.p_value:.3g}: " + ("**MISMATCH**" if srm.flagged else "fits the weights")
    lines += ["", f"Sample ratio (units per arm against the weights, flagged below p = {srm.threshold}): {verdict}", ""]
    lines += ["## Outcomes", ""] + [line for m in report.metrics if m.source == "outcome"
                                    for line in _metric_table(report, m)]
    if not any(m.source == "outcome" for m in report.metrics):
        lines += ["No outcome recorded yet (`POST /v1/feedback`, `project.record_outcome`).", ""]
    lines += ["## Guardrails", ""] + [line for m in report.metrics if m.source == "exposure"
                                      for line in _metric_table(report, m)]
    return "\n".join(lines)


def write_report(report: ExperimentReport, folder: Path) -> list[Path]:
    """report.md, report.json and a chart per metric into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    charts = {m.name: outcome_chart(report, m, folder / chart_name(m)) for m in report.metrics}
    (folder / "report.md").write_text(to_markdown(report) + "\n" + "".join(
        f"\n![{name}]({path.name})\n" for name, path in charts.items()), encoding="utf-8")
    body = {**report.to_dict(), "charts": {name: path.name for name, path in charts.items()}}
    (folder / "report.json").write_text(json.dumps(body, indent=2), encoding="utf-8")
    return [folder / "report.md", folder / "report.json", *charts.values()]
