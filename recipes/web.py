"""Recipe: crawl an internal web site (same host only), index its pages, answer a question.

    RAGTUNE_SITE=https://wiki.example.com/ python recipes/web.py --preview
    RAGTUNE_SITE=https://wiki.example.com/ python recipes/web.py --question "Where is the field kit?" --group staff

`--preview` crawls and lists the pages it would index and every page it skipped (robots.txt,
HTTP errors, non-HTML links) with the reason, without indexing. The crawl respects
robots.txt and waits `delay_s` between requests.
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
    parser.add_argument("--preview", action="store_true", help="crawl and list pages, index nothing")
    parser.add_argument("--question", help="a question to answer after ingesting")
    parser.add_argument("--group", action="append", default=[], help="groups of the asking user")
    args = parser.parse_args()

    project = framework.load(args.config, args.set)
    if args.preview:
        for item in build_connector(project.config.sources[0]).scan():
            if isinstance(item, SourceItem):
                doc = item.read()
                print(f"page {doc.uri}  {doc.title!r}  {len(doc.text)} chars")
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
