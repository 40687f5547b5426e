"""How `ragtune eval` shows a result in the terminal: rich tables of the headline metrics with
their intervals, the paired differences against the baseline, and the gate verdicts.
The report folder holds every metric (framework.evaluation.report).
"""

from __future__ import annotations

from rich.table import Table

from framework.evaluation.report import cell
from framework.evaluation.results import ALL, EvaluationResult
from framework.evaluation.stats import NA

HEADLINE = ("token_f1", "new_word_recall", "semantic_similarity", "groundedness", "repetition_rate",
            "retrieval_hit", "latency_p50_s", "tokens_per_s")
DIFFERENCES = ("token_f1", "new_word_recall", "semantic_similarity", "groundedness")


def metrics_table(result: EvaluationResult, split_kind: str | None = ALL) -> Table:
    where = "all questions" if split_kind is ALL else f"{split_kind} questions"
    table = Table(title=f"{where}: value (95% interval)", title_justify="left")
    for col in ("row", *HEADLINE):
        table.add_column(col, overflow="fold")
    for r in result.results:
        if r.refused:
            table.add_row(r.label, f"refused: {r.refused}", *["-"] * (len(HEADLINE) - 1))
        else:
            table.add_row(r.label, *[cell(result.estimate(r.label, m, split_kind)) for m in HEADLINE])
    return table


def differences_table(result: EvaluationResult) -> Table | None:
    pairs = result.comparisons
    if not pairs:
        return None
    table = Table(title=f"paired difference against {result.baseline} on the same questions "
                        "(* : the 95% interval excludes 0)", title_justify="left")
    for col in ("row", "questions", *DIFFERENCES):
        table.add_column(col, overflow="fold")
    for c in pairs:
        table.add_row(f"{c.label} − {c.baseline}", c.split_kind or "all",
                      *[cell(c.metrics.get(m, NA), signed=True) for m in DIFFERENCES])
    return table


def show(result: EvaluationResult, console) -> None:
    console.print(metrics_table(result))
    for kind in sorted({k for r in result.results for k in r.by_split_kind}):
        console.print(metrics_table(result, kind))
    diffs = differences_table(result)
    if diffs is not None:
        console.print(diffs)
    for c in result.gates.checks if result.gates else ():
        mark = "[green]PASS[/green]" if c.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {c.condition}: {c.reason}", highlight=False)
