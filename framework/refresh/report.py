"""What a refresh did, as a record (the return value, `--json`) and as reports/refresh-<id>/.

The report says what changed (documents and chunks), which examples were added, replayed
and removed, how long each step took (training included), the serving version's and the
candidate's metrics with intervals (overall and on changed and unchanged facts), and each
gate condition's verdict. `outcome` is what a scheduler acts on (exit codes in
framework.cli.common): promoted, gate_failed, nothing_to_do, or planned (a dry run).

Example:
    >>> r = RefreshReport(outcome="nothing_to_do", adapter="support", message="nothing changed")
    >>> r.to_markdown().splitlines()[0]
    '# Refresh of support: nothing_to_do'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

Outcome = Literal["promoted", "gate_failed", "nothing_to_do", "planned"]


@dataclass(frozen=True)
class RefreshReport:
    outcome: Outcome
    adapter: str
    message: str
    id: str = ""
    serving_before: str | None = None
    serving_after: str | None = None
    candidate: str | None = None
    resumed: bool = False
    ingest: Mapping[str, Any] = field(default_factory=dict)
    plan: Mapping[str, Any] = field(default_factory=dict)
    examples: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    gate: Mapping[str, Any] = field(default_factory=dict)
    estimate: Mapping[str, Any] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)
    report: str | None = None  # the folder holding refresh.md and refresh.json

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        lines = [f"# Refresh of {self.adapter}: {self.outcome}", "", self.message, ""]
        if self.serving_before:
            lines += [f"- serving before: {self.serving_before}; candidate: {self.candidate or '-'}; "
                      f"serving after: {self.serving_after or '-'}" + (" (resumed)" if self.resumed else "")]
        for title, section in (("Documents", self.plan.get("documents")), ("Chunks", self.plan.get("chunks")),
                               ("Examples", self.examples), ("Training", self.training),
                               ("Estimate", self.estimate), ("Seconds", self.seconds)):
            if section:
                lines += ["", f"## {title}", ""] + [f"- {k}: {_short(v)}" for k, v in section.items()]
        if self.plan.get("why_from_scratch"):
            lines += ["", f"Trained from scratch: {self.plan['why_from_scratch']}."]
        lines += _metrics(self.evaluation) + _gate(self.gate)
        return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value[:20])) + (f" (+{len(value) - 20} more)" if len(value) > 20 else "") or "-"
    return str(value)


def _cell(est: Mapping | None) -> str:
    if not est or est.get("value") is None:
        return "n/a"
    return f"{est['value']:.3f} ({est['low']:.3f}–{est['high']:.3f})"


def _metrics(evaluation: Mapping) -> list[str]:
    table = evaluation.get("metrics") or {}
    if not table:
        return []
    lines = ["", "## Serving version and candidate", "", f"Questions: {evaluation.get('questions')}; "
             f"evaluation report: {evaluation.get('report')}", "",
             "| questions | metric | serving | candidate | candidate - serving |", "|---|---|---|---|---|"]
    for kind, metrics in table.items():
        for metric, cols in metrics.items():
            lines.append(f"| {kind} | {metric} | {_cell(cols.get('serving'))} | {_cell(cols.get('candidate'))} | "
                         f"{_cell(cols.get('difference'))} |")
    return lines


def _gate(gate: Mapping) -> list[str]:
    if not gate:
        return []
    lines = ["", f"## Gate: {'passed' if gate.get('passed') else 'failed'}", ""]
    return lines + [f"- {'pass' if c['passed'] else 'FAIL'} `{c['condition']}`: {c['reason']}"
                    for c in gate.get("checks", [])]


def write_report(folder: Path, report: RefreshReport) -> RefreshReport:
    """Write refresh.md and refresh.json into `folder`; the report, now naming its folder."""
    from dataclasses import replace

    folder.mkdir(parents=True, exist_ok=True)
    report = replace(report, report=str(folder))
    (folder / "refresh.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    (folder / "refresh.md").write_text(report.to_markdown())
    return report
