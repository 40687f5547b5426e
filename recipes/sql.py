"""Recipe: index the rows of a database table or query, then answer a question.

    RAGTUNE_SQL_URL=postgresql+psycopg://kb_reader:${PGPASSWORD}@db/kb python recipes/sql.py --preview 3
    RAGTUNE_SQL_URL=sqlite:///kb.sqlite python recipes/sql.py --question "How do I reset a badge?" --group support

`--preview N` prints the first N documents as the text template renders them, so the
template can be tuned before anything is embedded. Re-running only re-embeds rows whose
rendered text, title, date or groups changed; deleted rows leave the index.
"""

from __future__ import annotations

from framework.cli.recipe import run_recipe


def describe(item) -> str:
    doc = item.read()
    return f"--- {doc.id}  {doc.title!r}  groups {','.join(doc.acl) or '-'}  updated {doc.updated_at}\n{doc.text}"


if __name__ == "__main__":
    run_recipe(__doc__, __file__, preview=describe, preview_limit=True)
