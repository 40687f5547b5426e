"""`python -m framework` runs the `ragtune` command line (useful without the console script)."""

from framework.cli.main import app

app(prog_name="ragtune")
