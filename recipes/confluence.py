"""Recipe: index a Confluence space export (HTML, zip or folder) and search or answer over it.

    CONFLUENCE_EXPORT=~/Downloads/ENG-export.zip python recipes/confluence.py --search "deploy checklist" --group eng
    CONFLUENCE_EXPORT=~/Downloads/ENG-export.zip python recipes/confluence.py --question "When do we deploy?"

Export the space in Confluence (Space settings > Export space > HTML). Every refused or
unreadable entry is printed with its reason; the rest is indexed. All the work lives in
`framework`; this script only names its source (the shared command line is framework/cli/recipe.py).
"""

from __future__ import annotations

from framework.cli.recipe import run_recipe

if __name__ == "__main__":
    run_recipe(__doc__, __file__)
