"""Recipe: index the documentation and code of a local git clone, then answer a question.

    RAGTUNE_REPO=~/src/platform python recipes/git.py --preview
    RAGTUNE_REPO=~/src/platform python recipes/git.py --question "How do I deploy?" --group engineering

Files are read as committed at `ref` (HEAD by default), never from the working tree. Run it
again after `git pull`: only files whose blob changed are parsed and embedded again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import framework
from connectors import build_connector
from framework.connector import SourceItem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).with_suffix(".yaml")))
    parser.add_argument("--set", action="append", default=[], help="override: key.path=value")
    parser.add_argument("--preview", action="store_true", help="list what would be indexed, index nothing")
    parser.add_argument("--question", help="a question to answer after ingesting")
    parser.add_argument("--group", action="append", default=[], help="groups of the asking user")
    args = parser.parse_args()

    project = framework.load(args.config, args.set)
    if args.preview:
        for item in build_connector(project.config.sources[0]).scan():
            if isinstance(item, SourceItem):
                print(f"{item.doc_id}  blob {item.content_hash[:10]}  groups {','.join(item.acl) or '-'}")
            else:
                print(f"skip {item.uri}: {item.reason}")
        return
    print(json.dumps(project.ingest().to_dict()["documents"]))
    if args.question:
        answer = project.ask(args.question, groups=args.group)
        print(answer.text)
        for source in answer.sources:
            print(f"  - {source.title} ({source.uri})")


if __name__ == "__main__":
    main()
