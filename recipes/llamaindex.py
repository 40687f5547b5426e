"""Recipe: ingest through a LlamaIndex reader built in Python, beside the sources in YAML.

    RAGTUNE_DOCS=~/notes python recipes/llamaindex.py --question "When does the roof garden open?" --group staff

Any LlamaHub reader works the same way: build it, wrap it in LlamaIndexReaderConnector, and
pass it to `project.ingest(extra=[...])` on every run (a source missing from a run leaves
the index). Readers from the `llama_index` namespace can instead be named in YAML; see
recipes/llamaindex.yaml and docs/connectors/llamaindex.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from llama_index.core import SimpleDirectoryReader

import framework
from connectors.llamaindex_reader import LlamaIndexReaderConnector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).with_suffix(".yaml")))
    parser.add_argument("--set", action="append", default=[], help="override: key.path=value")
    parser.add_argument("--question", help="a question to answer after ingesting")
    parser.add_argument("--group", action="append", default=[], help="groups of the asking user")
    args = parser.parse_args()

    project = framework.load(args.config, args.set)
    # A reader built in Python: any object with load_data(), here the directory reader with
    # its own options. id_key gives each document an id that survives edits and other machines.
    reader = SimpleDirectoryReader(input_dir=os.environ["RAGTUNE_DOCS"], recursive=True, required_exts=[".md"])
    markdown = LlamaIndexReaderConnector(name="markdown", reader=reader, id_key="file_name", acl=("staff",))
    print(json.dumps(project.ingest(extra=[markdown]).to_dict()["documents"]))
    if args.question:
        answer = project.ask(args.question, groups=args.group)
        print(answer.text)
        for source in answer.sources:
            print(f"  - {source.title} ({source.uri})")


if __name__ == "__main__":
    main()
