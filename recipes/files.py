"""Recipe: ingest a folder, optionally build the Q/A set and train, then answer a question.

    RAGTUNE_DOCS=~/company-docs python recipes/files.py --question "How many leave days?"
    RAGTUNE_DOCS=~/company-docs python recipes/files.py --train --mode combined --question "..."

All the work lives in `framework`; this script only names its source (framework/cli/recipe.py).
"""

from __future__ import annotations

from framework.cli.recipe import run_recipe

if __name__ == "__main__":
    run_recipe(__doc__, __file__)
