"""Recipe: the four modes on contoso's own reference questions, trained and untrained documents apart.

    python recipes/eval_contoso.py                       # fits about 60 minutes on 2 CPU cores
    python recipes/eval_contoso.py --budget-minutes 6    # a smoke run: few questions, few steps

Data: ../shared/datasets/contoso (from the repository root; --data elsewhere): six HR and
benefits PDFs and 100 questions whose reference answers cite their source. Half of them
cite pages (`[Northwind_Standard_Benefits_Details.pdf#page=7]`); only those are used, and
each PDF page is a document here (one text file per page, as pypdf extracts it), so the
adapter can learn some pages and not others. The other half cite whole files and are
left out. Citations are removed from the reference answers before scoring.

The subset, the training and the report come from framework/cli/eval_recipe.py: questions
on trained pages and on untrained pages are scored apart, distractor pages are indexed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from framework.cli.eval_recipe import SharedSet, run_eval_recipe

PAGE = re.compile(r"\[([^\[\]#]+?\.pdf)#page=(\d+)\]")
CITATION = re.compile(r"\s*\[[^\[\]]+\]")


def page_file(pdf: str, page: int) -> str:
    return f"{Path(pdf).stem}_p{page:03d}.txt"


def load(data: Path) -> SharedSet:
    from pypdf import PdfReader

    documents = {}
    for pdf in sorted((data / "data").glob("*.pdf")):
        for n, page in enumerate(PdfReader(pdf).pages, 1):
            text = (page.extract_text() or "").strip()
            if text:
                documents[page_file(pdf.name, n)] = text
    questions = []
    for line in (data / "evals" / "ground_truth.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        cited = re.findall(r"\[([^\[\]]+)\]", row["truth"])
        pages = PAGE.findall(row["truth"])
        if pages and len(pages) == len(cited):
            questions.append({"question": row["question"], "answer": CITATION.sub("", row["truth"]).strip(),
                              "sources": sorted({page_file(pdf, int(n)) for pdf, n in pages})})
    return SharedSet(documents=documents, questions=questions)


if __name__ == "__main__":
    run_eval_recipe(__doc__, __file__, name="contoso", load=load)
