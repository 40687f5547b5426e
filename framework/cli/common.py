"""What every `ragtune` command shares: the config options, the consoles, and error handling.

Exit codes: 0 success, 1 failure (bad input, empty index...), 2 invalid config or
arguments, 3 refused (e.g. a mode that needs an adapter nobody trained), 4 an
evaluation gate (`ragtune eval --gate`, `ragtune refresh`) failed, 5 nothing to do
(`ragtune refresh` found no change), 6 an A/B report's sample-ratio check flagged a mismatch
(`ragtune ab report`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console, ConsoleDimensions

from framework.adapters.registry import AdapterError
from framework.config import ConfigError
from framework.evaluation.gate import GateError
from framework.project import Project, load_config
from framework.records import check_group
from framework.runtime.models import ModelNotFoundError
from framework.serving.router import UnknownModeError

GATE_FAILED = 4
NOTHING_TO_DO = 5


class PlainWidthConsole(Console):
    """rich's Console, except that output to a file or a pipe is not wrapped at rich's default 80 columns
    (a report's table rows, cut into pieces, no longer read as a table in a log or through `grep`).
    A terminal keeps its width; `COLUMNS` still sets one."""

    UNWRAPPED = 10_000

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        if self._width is None and not self.is_terminal and "COLUMNS" not in self._environ:
            return ConsoleDimensions(self.UNWRAPPED, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


out = PlainWidthConsole()
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = typer.Option(Path("ragtune.yaml"), "--config", "-c", help="Project config file.")
SetOpt = typer.Option(None, "--set", "-s", help="Override a config key: key.path=value (repeatable).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
UserOpt = typer.Option("anonymous", "--user", help="Who is asking (their groups decide what they may read).")


def _check_groups(groups: Optional[List[str]]) -> Optional[List[str]]:
    """Refuse a malformed or reserved group name before any principal is built (exit code 2)."""
    try:
        return [check_group(g, where="--group") for g in groups or ()] or groups
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


GroupOpt = typer.Option(None, "--group", "-g", callback=_check_groups,
                        help="A group of the asking user (repeatable): letters, digits and . _ : @ / + # = -, "
                             "starting with a letter or digit.")


def _quiet_libraries() -> None:
    """Keep the terminal for ragtune's own progress: no per-load bars, no upstream deprecation notes."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def run(fn: Callable):
    """Turn the errors users can fix into one clear line and a scriptable exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    _quiet_libraries()
    try:
        return fn()
    except (ConfigError, UnknownModeError, GateError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2)
    except (AdapterError, PermissionError) as e:
        err.print(f"[red]refused:[/red] {e}", highlight=False)
        raise typer.Exit(3)
    except (ModelNotFoundError, OSError, ValueError, RuntimeError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(1)


def project(config: Path, overrides: Optional[List[str]], quiet: bool = False) -> Project:
    return Project(load_config(config, overrides or []), show_progress=not quiet)
