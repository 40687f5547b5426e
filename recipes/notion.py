"""Recipe: index a Notion export (Markdown & CSV, zip or folder) and search or answer over it.

    NOTION_EXPORT=~/Downloads/Export-2f1c.zip python recipes/notion.py --search "travel policy" --group staff
    NOTION_EXPORT=~/Downloads/Export-2f1c.zip python recipes/notion.py --question "What is the per diem abroad?"

Export from Notion (Settings > Export content > Markdown & CSV, with subpages). If the
download holds further zips (Part-1, Part-2), unzip it once and point to the folder.
Every refused or unreadable entry is printed with its reason; the rest is indexed.
All the work lives in `framework`; this script only names its source (the shared command line is framework/cli/recipe.py).
"""

from __future__ import annotations

from framework.cli.recipe import run_recipe

if __name__ == "__main__":
    run_recipe(__doc__, __file__)
