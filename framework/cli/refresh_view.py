"""How `ragtune refresh` shows its report in the terminal, and the exit code each outcome gets.

The same report is written, with everything, to reports/refresh-<id>/ (refresh.md, refresh.json).
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from framework.cli.common import GATE_FAILED, NOTHING_TO_DO
from framework.refresh.report import RefreshReport

EXIT_CODES = {"promoted": 0, "planned": 0, "nothing_to_do": NOTHING_TO_DO, "gate_failed": GATE_FAILED}
COLOURS = {"promoted": "green", "planned": "cyan", "nothing_to_do": "dim", "gate_failed": "red"}


def _cell(est: dict | None, signed: bool = False) -> str:
    if not est or est.get("value") is None:
        return "n/a"
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(est['value'])} ({f.format(est['low'])}–{f.format(est['high'])})"


def metrics_table(evaluation: dict) -> Table:
    table = Table(title=f"serving version and candidate on {evaluation.get('questions')} questions "
                        "(value, 95% interval)", title_justify="left")
    for col in ("questions", "metric", "serving", "candidate", "difference"):
        table.add_column(col, overflow="fold")
    for kind, metrics in (evaluation.get("metrics") or {}).items():
        for metric, cols in metrics.items():
            table.add_row(kind, metric, _cell(cols.get("serving")), _cell(cols.get("candidate")),
                          _cell(cols.get("difference"), signed=True))
    return table


def show(report: RefreshReport, out: Console) -> None:
    colour = COLOURS[report.outcome]
    out.print(f"[{colour}]{report.outcome}[/{colour}]: {escape(report.message)}", highlight=False)
    docs = report.plan.get("documents") or {}
    if docs:
        out.print("documents: " + ", ".join(f"{k} {len(v)}" for k, v in docs.items()), highlight=False)
    pending = report.plan.get("not_ingested_yet") or {}
    if any(pending.values()):
        out.print("not ingested yet: " + ", ".join(f"{k} {len(v)}" for k, v in pending.items()), highlight=False)
    for title, section in (("chunks", report.plan.get("chunks")), ("examples", report.examples),
                           ("training", report.training), ("estimate", report.estimate), ("seconds", report.seconds)):
        if section:
            out.print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in section.items()
                                                if not isinstance(v, (list, dict))), highlight=False)
    if report.evaluation.get("metrics"):
        out.print(metrics_table(report.evaluation))
    for check in report.gate.get("checks") or ():
        mark = "[green]pass[/green]" if check["passed"] else "[red]FAIL[/red]"
        out.print(f"  {mark} {escape(check['condition'])}: {escape(check['reason'])}", highlight=False)
    if report.report:
        out.print(f"report: {report.report}", highlight=False)
