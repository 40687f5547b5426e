"""Dataset versions on disk: `datasets/<name>/vNNNN/` folders and a `latest` pointer.

Every `ragtune synth` writes a new version folder (train.jsonl, eval.jsonl, card.json,
`*.openai.jsonl` copies holding only `messages` for OpenAI's finetuning upload, and
generated.jsonl, the per-chunk cache that lets the next run regenerate only the
chunks that changed) into a temporary folder renamed into place, then moves `latest`
(a relative symbolic link) to it. An adapter records the version it trained on, and
old versions stay readable. The JSONL files are chat-format rows that
`datasets.load_dataset("json", data_files=...)` and OpenAI finetuning both read.

Example:
    >>> folder = resolve_dataset_dir(Path(".ragtune/datasets"), "default")  # doctest: +SKIP
    >>> folder.name                                                         # doctest: +SKIP
    'v0003'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

_VERSION = re.compile(r"^v(\d{4,})$")
CACHE_FILE = "generated.jsonl"


def versions(root: Path) -> list[Path]:
    """Version folders of one dataset, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_dataset_dir(datasets_root: Path, name: str, version: str | None = None) -> Path:
    """The folder holding train.jsonl/eval.jsonl/card.json of a dataset (latest version by default).

    A dataset written before versioning (files directly in `<name>/`) is still found.
    The returned folder may not exist yet; callers check for card.json.
    """
    root = datasets_root / name
    if version:
        return root / version
    latest = root / "latest"
    if latest.is_symlink() or latest.is_file():
        target = os.readlink(latest) if latest.is_symlink() else latest.read_text().strip()
        return root / target
    if (root / "card.json").is_file():
        return root
    found = versions(root)
    return found[-1] if found else root / "latest"


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_version(root: Path, train: list[dict], evals: list[dict], card: dict, cache: list[dict]) -> dict:
    """Write the next version folder atomically and point `latest` at it; returns the card as written."""
    root.mkdir(parents=True, exist_ok=True)
    existing = versions(root)
    number = int(_VERSION.match(existing[-1].name).group(1)) + 1 if existing else 1
    name = f"v{number:04d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        _write_jsonl(tmp / "train.jsonl", train)
        _write_jsonl(tmp / "eval.jsonl", evals)
        _write_jsonl(tmp / CACHE_FILE, cache)
        # OpenAI's finetuning upload takes `messages` only; the lineage stays in the main files.
        for split, rows in (("train", train), ("eval", evals)):
            _write_jsonl(tmp / f"{split}.openai.jsonl", [{"messages": r["messages"]} for r in rows])
        digest = hashlib.sha256((tmp / "train.jsonl").read_bytes() + (tmp / "eval.jsonl").read_bytes()).hexdigest()
        card = {**card, "version": name, "hash": digest,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (tmp / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False))
        tmp.rename(root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    link = root / f".latest-{name}"
    link.unlink(missing_ok=True)
    link.symlink_to(name)
    os.replace(link, root / "latest")
    return card
