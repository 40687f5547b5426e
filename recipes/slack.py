"""Recipe: index a Slack workspace export (zip or folder) and search or answer over it.

    SLACK_EXPORT=~/Downloads/acme-slack-export.zip python recipes/slack.py --search "release freeze" --group staff
    SLACK_EXPORT=~/Downloads/acme-slack-export.zip python recipes/slack.py --question "When is the freeze?"

Export the workspace in Slack (Workspace settings > Import/Export data > Export).
Private channels are only readable by the group `slack:<channel>`; pass
`--group slack:<channel>` to see them. Every refused or unreadable entry is printed with
its reason; the rest is indexed. All the work lives in `framework`; this script only
strings the steps together.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import framework
from framework.records import Principal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).with_suffix(".yaml")))
    parser.add_argument("--set", action="append", default=[], help="override: key.path=value")
    parser.add_argument("--search", help="show the threads and conversations that match, without a model")
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


if __name__ == "__main__":
    main()
