"""Mix existing question/answer data into the finetuning set.

Teams often already hold instruction data: a chat-format JSONL from an earlier
finetune, an Alpaca-style JSON file, a spreadsheet of FAQ entries. Each is read into
chat rows (`messages` ending with the assistant's answer) tagged
`generator: import:<file name>`. A bad line is an error naming the file and line,
never a silently shorter set.

Formats, chosen by extension:
- `.jsonl`: one `{"messages": [{"role", "content"}, ...]}` per line, last message from the assistant;
- `.json`: a list of `{"instruction", "input" (optional), "output"}` (Alpaca);
- `.csv`: a header with `question` and `answer` columns (any case; other columns ignored).

Example:
    >>> rows = read_import(Path("faq.csv"))   # doctest: +SKIP
    >>> rows[0]["generator"]                   # doctest: +SKIP
    'import:faq.csv'
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


class ImportFormatError(ValueError):
    """An import file is missing or malformed; the message names the file and line."""


def _row(messages: list[dict], source: str, line: int) -> dict:
    question = next((m["content"] for m in reversed(messages[:-1]) if m["role"] == "user"), "")
    return {"messages": messages, "mode": "finetuned", "question": question, "answer": messages[-1]["content"],
            "chunk_id": None, "doc_id": None, "doc_hash": None, "generator": f"import:{source}",
            "source_line": line, "scores": {}}


def _check_messages(messages, where: str) -> list[dict]:
    if not isinstance(messages, list) or len(messages) < 2:
        raise ImportFormatError(f"{where}: 'messages' must be a list of at least a user and an assistant message")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str) or not m["content"].strip():
            raise ImportFormatError(f"{where}: each message needs a role (system, user or assistant) and "
                                    f"non-empty text content; got {json.dumps(m)[:120]}")
    if messages[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in messages):
        raise ImportFormatError(f"{where}: the conversation must contain a user message and end with the "
                                "assistant's answer")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ImportFormatError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(item, dict) or "messages" not in item:
            raise ImportFormatError(f"{where}: expected an object with a 'messages' list (chat format)")
        rows.append(_row(_check_messages(item["messages"], where), path.name, n))
    return rows


def _read_alpaca(path: Path) -> list[dict]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ImportFormatError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(items, list):
        raise ImportFormatError(f"{path}: expected a JSON list of {{instruction, input, output}} objects (Alpaca)")
    rows = []
    for i, item in enumerate(items):
        where = f"{path}: item {i}"
        if not isinstance(item, dict) or not str(item.get("instruction", "")).strip() \
                or not str(item.get("output", "")).strip():
            raise ImportFormatError(f"{where}: needs non-empty 'instruction' and 'output' fields")
        prompt = item["instruction"].strip() + (f"\n\n{item['input'].strip()}" if str(item.get("input", "")).strip()
                                                  else "")
        rows.append(_row([{"role": "user", "content": prompt}, {"role": "assistant", "content": item["output"]}],
                         path.name, i))
    return rows


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        if "question" not in columns or "answer" not in columns:
            raise ImportFormatError(f"{path}:1: the header needs 'question' and 'answer' columns; "
                                    f"found {reader.fieldnames}")
        rows = []
        for record in reader:
            q = (record.get(columns["question"]) or "").strip()
            a = (record.get(columns["answer"]) or "").strip()
            if not q or not a:
                raise ImportFormatError(f"{path}:{reader.line_num}: empty question or answer")
            rows.append(_row([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                             path.name, reader.line_num))
    return rows


_READERS = {".jsonl": _read_jsonl, ".json": _read_alpaca, ".csv": _read_csv}


def read_import(path: Path) -> list[dict]:
    """Chat rows from one import file (format by extension); raises ImportFormatError naming the line."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ImportFormatError(f"dataset.import: {path} has an unknown extension; use .jsonl (chat messages), "
                                ".json (Alpaca) or .csv (question,answer)")
    if not path.is_file():
        raise ImportFormatError(f"dataset.import: {path} not found")
    rows = reader(path)
    if not rows:
        raise ImportFormatError(f"dataset.import: {path} holds no examples")
    return rows
