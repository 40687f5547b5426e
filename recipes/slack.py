"""Recipe: index a Slack workspace export (zip or folder) and search or answer over it.

    SLACK_EXPORT=~/Downloads/acme-slack-export.zip python recipes/slack.py --search "release freeze" --group staff
    SLACK_EXPORT=~/Downloads/acme-slack-export.zip python recipes/slack.py --question "When is the freeze?"

Export the workspace in Slack (Workspace settings > Import/Export data > Export).
Private channels are only readable by the group `slack:<channel>`; pass
`--group slack:<channel>` to see them. Every refused or unreadable entry is printed with
its reason; the rest is indexed. All the work lives in `framework`; this script only
strings the steps together.
"""

from __future__ import annotations

from framework.cli.recipe import run_recipe

if __name__ == "__main__":
    run_recipe(__doc__, __file__)
