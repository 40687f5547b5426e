"""Recipe: index the rows of a database table or query, then answer a question.

    RAGTUNE_SQL_URL=postgresql+psycopg://kb_reader:${PGPASSWORD}@db/kb python recipes/sql.py --preview 3
    RAGTUNE_SQL_URL=sqlite:///kb.sqlite python recipes/sql.py --question "How do I reset a badge?" --group support

`--preview N` prints the first N documents as the text template renders them, so the
template can be tuned before anything is embedded. Re-running only re-embeds rows whose
rendered text, title, date or groups changed; deleted rows leave the index.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import framework
from connectors import build_connector
from framework.connector import SourceItem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).with_suffix(".yaml")))
    parser.add_argument("--set", action="append", default=[], help="override: key.path=value")
    parser.add_argument("--preview", type=int, metavar="N", help="print N rendered documents, index nothing")
    parser.add_argument("--question", help="a question to answer after ingesting")
    parser.add_argument("--group", action="append", default=[], help="groups of the asking user")
    args = parser.parse_args()

    project = framework.load(args.config, args.set)
    if args.preview:
        items = (i for i in build_connector(project.config.sources[0]).scan() if isinstance(i, SourceItem))
        for item in itertools.islice(items, args.preview):
            doc = item.read()
            print(f"--- {doc.id}  {doc.title!r}  groups {','.join(doc.acl) or '-'}  updated {doc.updated_at}")
            print(doc.text)
        return
    print(json.dumps(project.ingest().to_dict()["documents"]))
    if args.question:
        answer = project.ask(args.question, groups=args.group)
        print(answer.text)
        for source in answer.sources:
            print(f"  - {source.title} ({source.uri})")


if __name__ == "__main__":
    main()
