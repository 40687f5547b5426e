"""The command line the export recipes share (recipes/confluence.py, notion.py, slack.py).

Each recipe ingests its source, prints what was indexed and what was skipped with the
reason, then optionally searches (no model) or answers a question.

Example:
    >>> from framework.recipe_cli import export_recipe   # in a recipe: export_recipe(__doc__, __file__, "...")
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import framework
from framework.records import Principal


def export_recipe(doc: str, script: str, search_help: str) -> None:
    """Parse the recipe's arguments (config defaults to the .yaml beside `script`) and run it."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(script).with_suffix(".yaml")))
    parser.add_argument("--set", action="append", default=[], help="override: key.path=value")
    parser.add_argument("--search", help=search_help)
    parser.add_argument("--question", help="answer a question with the configured mode")
    parser.add_argument("--group", action="append", default=[], help="groups of the asking user")
    args = parser.parse_args()

    project = framework.load(args.config, args.set)
    report = project.ingest().to_dict()
    print(json.dumps(report["documents"]))
    for failure in report["failures"]:
        print(f"  skipped {failure['uri']}: {failure['reason']}")
    if args.search:
        for hit in project.retrieve(args.search, principal=Principal(user="recipe", groups=tuple(args.group))):
            print(f"{hit.score:.3f}  {hit.title}  ({hit.uri})")
    if args.question:
        answer = project.ask(args.question, groups=args.group)
        print(answer.text)
        for source in answer.sources:
            print(f"  - {source.title} ({source.uri})")
