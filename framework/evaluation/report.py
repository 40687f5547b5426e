"""Reports: one folder per run, reports/<timestamp>/, that a team can read and a script can parse.

- `report.md`: the metrics per row with 95% intervals (overall and per split kind), the
  paired differences against the baseline, refused rows and why, the gate verdicts, the charts;
- `report.json`: the same as data, with every answer (prompt, sources) and its scores;
- `questions.csv`: one line per question and row, to read failures;
- PNG charts (framework.evaluation.charts).

Example:
    >>> from framework.evaluation.stats import Estimate
    >>> cell(Estimate(0.5, 0.25, 0.75, 40))
    '0.500 (0.250–0.750)'
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from framework.evaluation.gold import gold_sources
from framework.evaluation.results import ALL, LOWER_IS_BETTER, METRICS, EvaluationResult
from framework.evaluation.stats import NA, Estimate
from framework.workspace import Workspace


def cell(est: Estimate, *, signed: bool = False) -> str:
    """A value with its interval; a difference whose interval excludes 0 gets a `*`."""
    if est.value is None:
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    star = "*" if signed and est.low is not None and (est.low > 0 or est.high < 0) else ""
    return f"{f.format(est.value)} ({f.format(est.low)}–{f.format(est.high)}){star}"


def _table(header: Sequence[str], columns: Sequence[Mapping[str, str]], metrics: Sequence[str] = tuple(METRICS)
           ) -> list[str]:
    lines = ["| metric | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for metric in metrics:
        note = " (lower is better)" if metric in LOWER_IS_BETTER else ""
        lines.append(f"| {metric}{note} | " + " | ".join(c.get(metric, "n/a") for c in columns) + " |")
    return lines


def metrics_table(result: EvaluationResult, split_kind: str | None = ALL) -> list[str]:
    """Markdown: one column per row of the run, one line per metric."""
    cols = []
    for r in result.results:
        cols.append({m: "refused" for m in METRICS} if r.refused else
                    {m: cell(result.estimate(r.label, m, split_kind)) for m in METRICS})
    return _table([r.label for r in result.results], cols)


def differences_table(result: EvaluationResult, split_kind: str | None = ALL) -> list[str]:
    pairs = [c for c in result.comparisons if c.split_kind == split_kind]
    if not pairs:
        return []
    cols = [{m: cell(c.metrics.get(m, NA), signed=True) for m in METRICS} for c in pairs]
    compared = [m for m in METRICS if any(m in c.metrics for c in pairs)]
    return _table([f"{c.label} − {c.baseline}" for c in pairs], cols, compared)


def markdown(result: EvaluationResult, *, title: str, created: str, charts: Sequence[Path] = ()) -> str:
    n = {r.label: len(r.answers) for r in result.results}
    body = [f"# {title}", "", f"created {created}; {result.questions} questions; baseline `{result.baseline}`; "
            f"intervals are {result.confidence:.0%} percentile-bootstrap intervals over the questions "
            f"({result.resamples:,} resamples); definitions: docs/guides/evaluation.md", "", "## Metrics", "", *metrics_table(result), ""]
    body += [f"- **{r.label}** refused: {r.refused}" for r in result.results if r.refused]
    kinds = sorted({k for r in result.results for k in r.by_split_kind})
    for kind in kinds:
        count = max((r.by_split_kind[kind]["token_f1"].n for r in result.results if kind in r.by_split_kind),
                    default=0)
        body += ["", f"## Metrics on `{kind}` questions ({count})", "", *metrics_table(result, kind)]
    for kind in (ALL, *kinds):
        table = differences_table(result, kind)
        where = "all questions" if kind is ALL else f"`{kind}` questions"
        if table:
            body += ["", f"## Paired differences against `{result.baseline}` ({where})", "",
                     "Each row minus the baseline on the same questions; `*`: the 95% interval excludes 0.", "",
                     *table]
    if result.gates:
        body += ["", "## Gates", ""]
        body += [f"- {'PASS' if c.passed else 'FAIL'} `{c.condition}`: {c.reason}" for c in result.gates.checks]
    body += ["", "## Charts", ""] + [f"![{p.stem}]({p.name})" for p in charts]
    body += ["", f"Per-question scores: questions.csv ({sum(n.values())} lines)", ""]
    return "\n".join(body)


CSV_SCORES = ("token_f1", "answer_recall", "new_word_recall", "semantic_similarity", "groundedness",
              "repetition_rate", "abstained", "truncated", "retrieval_rank", "latency_s", "generated_tokens")


def write_csv(path: Path, result: EvaluationResult, rows: Sequence[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["question_index", "split_kind", "row", "mode", "adapter", "question", "reference", "answer",
                      *CSV_SCORES, "gold_sources", "retrieved", "reason"])
        for r in result.results:
            for i, (a, s, q) in enumerate(zip(r.answers, r.per_question, rows)):
                scores = ["" if s.get(k) is None else round(s[k], 4) for k in CSV_SCORES]
                out.writerow([i, q.get("split_kind") or "", r.label, a.mode, a.adapter or "", q["question"],
                              q["answer"], a.text, *scores, ";".join(gold_sources(q)),
                              ";".join(src.doc_id for src in a.sources), a.reason])


def _folder(root: Path) -> tuple[Path, str]:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder, n = root / stamp, 1
    while folder.exists():  # two reports in one second both stay
        n += 1
        folder = root / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder, folder.name


def write_report(workspace: Workspace, result: EvaluationResult, rows: Sequence[dict], *, title: str,
                 extra: Mapping | None = None) -> Path:
    """Write reports/<timestamp>/ (markdown, JSON, per-question CSV, charts); returns report.md's path."""
    from framework.evaluation.charts import write_charts

    folder, created = _folder(workspace.reports)
    charts = write_charts(result, folder)
    write_csv(folder / "questions.csv", result, rows)
    (folder / "report.md").write_text(markdown(result, title=title, created=created, charts=charts), encoding="utf-8")
    data = {"title": title, "created": created, **result.to_dict(), **dict(extra or {})}
    (folder / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return folder / "report.md"
