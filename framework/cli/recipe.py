"""The command line every recipe in recipes/ shares.

A recipe names its source (its YAML beside it) and, where useful, how to preview what a
source would index; this helper does the rest: `--preview` lists documents without
indexing, otherwise it ingests, prints the counts and every skipped document with its
reason, then optionally builds the Q/A set and trains (`--train`), searches without a
model (`--search`) or answers a question (`--question`, `--mode`, `--group`).

Example:
    >>> from framework.cli.recipe import run_recipe   # in a recipe: run_recipe(__doc__, __file__)
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Callable, Sequence

import framework
from framework.ingest.contract import LoadFailure, SourceItem
from framework.records import MODES, Principal, check_group


def _group(value: str) -> str:
    try:
        return check_group(value, where="--group")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parser(doc: str, script: str, preview: Callable | None, preview_limit: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(script).with_suffix(".yaml")))
    parser.add_argument("--set", action="append", default=[], help="override: key.path=value")
    if preview and preview_limit:
        parser.add_argument("--preview", type=int, metavar="N", help="print N documents as indexed, index nothing")
    elif preview:
        parser.add_argument("--preview", action="store_true", help="list what would be indexed, index nothing")
    parser.add_argument("--train", action="store_true", help="also synthesize the Q/A set, train the adapter and promote it")
    parser.add_argument("--search", help="show the chunks that match, without a model")
    parser.add_argument("--question", help="a question to answer after ingesting")
    parser.add_argument("--mode", choices=MODES, help="answer in this mode instead of the routed one")
    parser.add_argument("--group", action="append", default=[], type=_group, help="groups of the asking user")
    return parser


def _preview(project, describe: Callable[[SourceItem], str], limit: int | None) -> None:
    from connectors import build_connector

    items = (i for i in build_connector(project.config.sources[0]).scan() if isinstance(i, (SourceItem, LoadFailure)))
    shown = 0
    for item in items if limit is None else itertools.takewhile(lambda _: shown < limit, items):
        if isinstance(item, LoadFailure):
            print(f"skip {item.uri}: {item.reason}")
        else:
            print(describe(item))
            shown += 1


def run_recipe(doc: str, script: str, *, preview: Callable[[SourceItem], str] | None = None,
               preview_limit: bool = False, connectors: Callable[[], Sequence] = tuple) -> None:
    """Parse the recipe's arguments (config defaults to the .yaml beside `script`) and run it.

    `preview` describes one scanned document for `--preview` (with `preview_limit`, `--preview N`
    stops after N documents); `connectors` builds connectors made in Python (passed to ingest)."""
    args = _parser(doc, script, preview, preview_limit).parse_args()
    project = framework.load(args.config, args.set)
    if preview and args.preview:
        _preview(project, preview, args.preview if preview_limit else None)
        return
    report = project.ingest(extra=connectors()).to_dict()
    print(json.dumps(report["documents"]))
    for failure in report["failures"]:
        print(f"  skipped {failure['reason']}")  # the reason names the document
    if args.train:
        card = project.synthesize()
        print(f"dataset {card.version}: {dict(card.split)}, dropped {dict(card.dropped)}")
        manifest = project.finetune(promote=True)  # --train is the one-step path: the new version serves
        print(f"adapter {manifest.name}/{manifest.version}: {dict(manifest.metrics)}")
    if args.search:
        for hit in project.retrieve(args.search, principal=Principal(user="recipe", groups=tuple(args.group))):
            print(f"{hit.score:.3f}  {hit.title}  ({hit.uri})")
    if args.question:
        answer = project.ask(args.question, mode=args.mode, groups=args.group)
        print(answer.text)
        for source in answer.sources:
            print(f"  - {source.title} ({source.uri}) score {source.score}")
