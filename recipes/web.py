"""Recipe: crawl an internal web site (same host only), index its pages, answer a question.

    RAGTUNE_SITE=https://wiki.example.com/ python recipes/web.py --preview
    RAGTUNE_SITE=https://wiki.example.com/ python recipes/web.py --question "Where is the field kit?" --group staff

`--preview` crawls and lists the pages it would index and every page it skipped (robots.txt,
HTTP errors, non-HTML links) with the reason, without indexing. The crawl respects
robots.txt and waits `delay_s` between requests.
"""

from __future__ import annotations

from framework.cli.recipe import run_recipe


def describe(item) -> str:
    doc = item.read()
    return f"page {doc.uri}  {doc.title!r}  {len(doc.text)} chars"


if __name__ == "__main__":
    run_recipe(__doc__, __file__, preview=describe)
