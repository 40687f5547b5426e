"""Recipe: the four modes on anthropic_docs' own reference questions, trained and untrained pages apart.

    python recipes/eval_anthropic_docs.py                      # fits about 60 minutes on 2 CPU cores
    python recipes/eval_anthropic_docs.py --budget-minutes 6   # a smoke run: few questions, few steps

Data: ../shared/datasets/anthropic_docs (from the repository root; --data elsewhere): 232
pre-chunked documentation sections and 100 questions, each with the sections that answer
it (most need two) and a reference answer. Each section is a document here (a Markdown
file: its heading, then its text), named after its link so the gold sections map onto it.

The subset, the training and the report come from framework/cli/eval_recipe.py: questions
on trained sections and on untrained sections are scored apart, distractor sections are indexed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from framework.cli.eval_recipe import SharedSet, run_eval_recipe


def section_file(link: str) -> str:
    """en/docs/build-with-claude/vision#faq -> en-docs-build-with-claude-vision-faq-<hash>.md (unique, readable)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", link.split("://", 1)[-1].split("/", 1)[-1]).strip("-")[:80]
    return f"{slug}-{hashlib.sha1(link.encode()).hexdigest()[:6]}.md"


def load(data: Path) -> SharedSet:
    sections = json.loads((data / "anthropic_docs.json").read_text(encoding="utf-8"))
    documents = {section_file(s["chunk_link"]): f"# {s['chunk_heading']}\n\n{s['text']}" for s in sections}
    questions = [{"question": q["question"], "answer": q["correct_answer"],
                  "sources": sorted({section_file(link) for link in q["correct_chunks"]})}
                 for q in json.loads((data / "docs_evaluation_dataset.json").read_text(encoding="utf-8"))]
    return SharedSet(documents=documents, questions=questions)


if __name__ == "__main__":
    run_eval_recipe(__doc__, __file__, name="anthropic_docs", load=load)
