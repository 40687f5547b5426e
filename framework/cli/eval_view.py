"""How `ragtune eval` shows a result in the terminal: the metrics (one line each, one column
per row of the run) with 95% intervals, the headline metrics per split kind, the paired
differences against the baseline, refused rows and the gate verdicts. The report folder
holds all of it with 3 decimals (framework.evaluation.report).
"""

from __future__ import annotations

from rich.table import Table

from framework.adapters.registry import AdapterError
from framework.evaluation.results import ALL, LOWER_IS_BETTER, METRICS, EvaluationResult
from framework.evaluation.stats import Estimate

BY_KIND = ("token_f1", "new_word_recall", "semantic_similarity")
DIFFERENCES = ("token_f1", "new_word_recall", "key_span", "semantic_similarity", "groundedness")


def short(est: Estimate, *, signed: bool = False, digits: int = 2) -> str:
    if est.value is None:
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    star = "*" if signed and (est.low > 0 or est.high < 0) else ""
    return f"{f.format(est.value)} ({f.format(est.low)}–{f.format(est.high)}){star}"


def _digits(metric: str) -> int:
    return 0 if metric == "tokens_per_s" else 2


def metrics_table(result: EvaluationResult) -> Table:
    rows = [r for r in result.results if not r.refused]
    table = Table(title="value (95% interval) on all questions", title_justify="left")
    table.add_column("metric", no_wrap=True)
    for r in rows:
        table.add_column(r.label, overflow="fold")
    for m in METRICS:
        name = m + (" ↓" if m in LOWER_IS_BETTER else "")
        table.add_row(name, *[short(result.estimate(r.label, m), digits=_digits(m)) for r in rows])
    return table


def kinds_table(result: EvaluationResult, kinds: list[str]) -> Table:
    table = Table(title="per split kind", title_justify="left")
    for col in ("row", "metric", *kinds):
        table.add_column(col, overflow="fold")
    for r in (x for x in result.results if not x.refused):
        for m in BY_KIND:
            table.add_row(r.label, m, *[short(result.estimate(r.label, m, k)) for k in kinds])
    return table


def differences_table(result: EvaluationResult, kinds: list[str]) -> Table:
    table = Table(title=f"each row minus {result.baseline}, paired on the same questions "
                        "(*: the interval excludes 0)", title_justify="left")
    for col in ("row", "metric", "all", *kinds):
        table.add_column(col, overflow="fold")
    for label in dict.fromkeys(c.label for c in result.comparisons):
        for m in DIFFERENCES:
            table.add_row(label, m,
                          *[short(result.difference(label, m, k), signed=True) for k in (ALL, *kinds)])
    return table


def knowledge_notes(result: EvaluationResult, registry) -> list[str]:
    """Each answering adapter's held-out knowledge check (from its manifest), to read beside the rows' `key_span`."""
    notes = []
    for key in dict.fromkeys(r.adapter for r in result.results if r.adapter):
        name, _, version = key.rpartition("-")
        try:
            k = registry.get(name, version).manifest.knowledge
        except AdapterError:  # deleted since: nothing to show
            continue
        if k.get("accuracy") is None:
            continue
        base = f"; base model {k['base']['accuracy']:.2f}" if (k.get("base") or {}).get("accuracy") is not None else ""
        notes.append(f"{key} knowledge check (closed-book key span, {k['probes']} held-out rewordings of trained "
                     f"facts, epoch {k['kept_epoch']:g} kept): {k['accuracy']:.2f} [{k['low']:.2f}, {k['high']:.2f}]"
                     f"{base}")
    return notes


def show(result: EvaluationResult, console) -> None:
    console.print(metrics_table(result))
    kinds = sorted({k for r in result.results for k in r.by_split_kind})
    if kinds:
        console.print(kinds_table(result, kinds))
    if result.comparisons:
        console.print(differences_table(result, kinds))
    for r in result.results:
        if r.refused:
            console.print(f"[yellow]{r.label} refused:[/yellow] {r.refused}", highlight=False)
    for c in result.gates.checks if result.gates else ():
        mark = "[green]PASS[/green]" if c.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {c.condition}: {c.reason}", highlight=False)
