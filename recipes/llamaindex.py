"""Recipe: ingest through a LlamaIndex reader built in Python, beside the sources in YAML.

    RAGTUNE_DOCS=~/notes python recipes/llamaindex.py --question "When does the roof garden open?" --group staff

Any LlamaHub reader works the same way: build it, wrap it in LlamaIndexReaderConnector, and
pass it to `project.ingest(extra=[...])` on every run (a source missing from a run leaves
the index). Readers from the `llama_index` namespace can instead be named in YAML; see
recipes/llamaindex.yaml and docs/connectors/llamaindex.md.
"""

from __future__ import annotations

import os

from connectors.llamaindex_reader import LlamaIndexReaderConnector
from framework.cli.recipe import run_recipe


def markdown_notes() -> list:
    """A reader built in Python: any object with load_data(), here the directory reader with its own
    options. id_key gives each document an id that survives edits and other machines."""
    from llama_index.core import SimpleDirectoryReader

    reader = SimpleDirectoryReader(input_dir=os.environ["RAGTUNE_DOCS"], recursive=True, required_exts=[".md"])
    return [LlamaIndexReaderConnector(name="markdown", reader=reader, id_key="file_name", acl=("staff",))]


if __name__ == "__main__":
    run_recipe(__doc__, __file__, connectors=markdown_notes)
