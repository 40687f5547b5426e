"""Recipe: index the documentation and code of a local git clone, then answer a question.

    RAGTUNE_REPO=~/src/platform python recipes/git.py --preview
    RAGTUNE_REPO=~/src/platform python recipes/git.py --question "How do I deploy?" --group engineering

Files are read as committed at `ref` (HEAD by default), never from the working tree. Run it
again after `git pull`: only files whose blob changed are parsed and embedded again.
"""

from __future__ import annotations

from framework.cli.recipe import run_recipe


def describe(item) -> str:
    return f"{item.doc_id}  blob {item.content_hash[:10]}  groups {','.join(item.acl) or '-'}"


if __name__ == "__main__":
    run_recipe(__doc__, __file__, preview=describe)
