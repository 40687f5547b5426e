"""Question files: the questions a run scores, with reference answers and optional gold sources.

Two formats, chosen by the file's extension:

- JSONL (`.jsonl`): one object per line with `question`, `answer`, optional gold sources
  (`sources`, or `document` / `doc_id` as the dataset's eval split writes them: a string or
  a list of strings) and optional `split_kind` (a group the report scores apart).
- CSV (`.csv`, a header row first): columns `question`, `answer`, optional `sources`
  (several separated by `;`) and `split_kind`. Other columns are kept and ignored.

Gold sources are document ids, file names or paths, uris, each optionally with
`#page=N` (framework.evaluation.gold). Every error names the file, line and field.

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "q.csv"
    >>> _ = path.write_text("question,answer,sources\\nHow many days?,28 days,handbook.md;plan.pdf#page=2\\n")
    >>> load_questions(path)[0]["sources"]
    ['handbook.md', 'plan.pdf#page=2']
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from framework.evaluation.gold import GOLD_FIELDS

REQUIRED = ("question", "answer")


def _check_row(row: dict, where: str) -> dict:
    for name in REQUIRED:
        if not isinstance(row.get(name), str) or not row[name].strip():
            raise ValueError(f"{where}: field '{name}' is missing or empty; each line needs non-empty "
                             "'question' and 'answer' fields")
    for name in GOLD_FIELDS:
        gold = row.get(name)
        if gold is not None and not (isinstance(gold, str) or
                                     (isinstance(gold, list) and all(isinstance(g, str) for g in gold))):
            raise ValueError(f"{where}: field '{name}' must be a source (document id, file name or uri) or a list "
                             f"of them, got {json.dumps(gold)}")
    if row.get("split_kind") is not None and not isinstance(row["split_kind"], str):
        raise ValueError(f"{where}: field 'split_kind' must be a string naming the question's group")
    return row


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not valid JSON at column {err.colno} ({err.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: each line must be a JSON object with 'question' and 'answer' fields")
        rows.append(_check_row(row, f"{path}:{n}"))
    return rows


def _csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ValueError(f"{path}:1: the header has no column {', '.join(repr(c) for c in missing)} (columns: "
                             f"{', '.join(header) or 'none'}); name the columns question, answer and optionally "
                             "sources, split_kind")
        reader.fieldnames = header
        rows = []
        for raw in reader:
            if None in raw:
                raise ValueError(f"{path}:{reader.line_num}: more cells than the header has columns; quote cells "
                                 "that contain commas")
            row = {k: (v or "").strip() for k, v in raw.items()}
            if not any(row.values()):
                continue
            for name in GOLD_FIELDS:
                if name in row:
                    row[name] = [g.strip() for g in row[name].split(";") if g.strip()]
            row["split_kind"] = row.get("split_kind") or None
            rows.append(_check_row(row, f"{path}:{reader.line_num}"))
    return rows


def load_questions(path: Path) -> list[dict]:
    """Rows of a JSONL or CSV question file; errors name the line and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"questions file {path} not found (expected a JSONL or CSV file)")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv", ".json"):
        raise ValueError(f"{path}: unknown question file type {suffix!r}; use .jsonl (one JSON object per line) "
                         "or .csv (header: question,answer,sources,split_kind)")
    rows = _csv(path) if suffix == ".csv" else _jsonl(path)
    if not rows:
        raise ValueError(f"{path}: no questions found")
    return rows
