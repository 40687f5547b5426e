"""Comparison reports: a table of the modes on the same questions, as markdown and JSON.

Example:
    >>> print(markdown_table({"rag": {"token_f1": 0.5, "answer_recall": 0.25}}).splitlines()[2])
    | rag | 0.500 | 0.250 | n/a | n/a |
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from framework.workspace import Workspace

COLUMNS = ("token_f1", "answer_recall", "retrieval_hit_rate", "latency_s")


def markdown_table(results: dict) -> str:
    lines = ["| mode | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for mode, r in results.items():
        cells = ["n/a" if r.get(c) is None else f"{r[c]:.3f}" for c in COLUMNS]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        for kind, sub in (r.get("by_split_kind") or {}).items():
            cells = ["" if sub.get(c) is None else f"{sub[c]:.3f}" for c in COLUMNS]
            lines.append(f"| {mode} ({kind}, {sub['questions']} q) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(workspace: Workspace, title: str, results: dict, extra: dict | None = None) -> tuple[Path, Path]:
    """Write reports/<timestamp>.md and .json of `results` (mode -> scores and answers); returns both paths."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = workspace.reports
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while (folder / f"{stamp}.json").exists():  # two reports in one second both stay
        n += 1
        stamp = f"{stamp.split('-')[0]}-{n}"
    md, js = folder / f"{stamp}.md", folder / f"{stamp}.json"
    body = [f"# {title}", "", f"created {stamp}", "", markdown_table(results), ""]
    for key, value in (extra or {}).items():
        body += [f"## {key}", "", "```", json.dumps(value, indent=2, ensure_ascii=False), "```", ""]
    md.write_text("\n".join(body))
    js.write_text(json.dumps({"title": title, "created": stamp, "results": results, **(extra or {})}, indent=2,
                             ensure_ascii=False))
    return md, js
