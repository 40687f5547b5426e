"""Recipe: ingest a folder, optionally build the Q/A set and train, then answer a question.

    RAGTUNE_DOCS=~/company-docs python recipes/files.py --question "How many leave days?"
    RAGTUNE_DOCS=~/company-docs python recipes/files.py --train --mode combined --question "..."

All the work lives in `framework`; this script only strings the steps together.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import framework


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).with_suffix(".yaml")))
    parser.add_argument("--set", action="append", default=[], help="override: key.path=value")
    parser.add_argument("--train", action="store_true", help="also synthesize the Q/A set and train the adapter")
    parser.add_argument("--question", help="a question to answer after ingesting")
    parser.add_argument("--mode", default=None, help="prompt_only | rag | finetuned | combined | auto")
    parser.add_argument("--group", action="append", default=[], help="groups of the asking user")
    args = parser.parse_args()

    project = framework.load(args.config, args.set)
    report = project.ingest()
    print(json.dumps(report.to_dict()["documents"]))
    if args.train:
        card = project.synthesize()
        print(f"dataset: {card['split']}, dropped {card['dropped']}")
        manifest = project.finetune()
        print(f"adapter {manifest['name']}/{manifest['version']}: {manifest['metrics']}")
    if args.question:
        answer = project.ask(args.question, mode=args.mode, groups=args.group)
        print(answer.text)
        for source in answer.sources:
            print(f"  - {source.title} ({source.uri}) score {source.score}")


if __name__ == "__main__":
    main()
