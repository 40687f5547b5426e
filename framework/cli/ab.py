"""`ragtune ab ...`: A/B experiments from the command line.

- `report NAME`: per arm exposures, units and outcomes with 95% intervals, each arm against the control
  (Welch's t / two-proportion test), the sample-ratio check; writes report.md, report.json and a chart
  per outcome to reports/ab/NAME/<time>/ (or `--out`); `--json` prints the JSON. Exit code 6 when the
  sample-ratio check flags a mismatch, so a script cannot miss it.
- `list`: every configured experiment, running or not, with its arms and exposures so far.
- `assign NAME UNIT`: the bucket and arm of a unit (a user id), as every server computes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from framework.cli.common import ConfigOpt, JsonOpt, SetOpt, err, out
from framework.cli.common import project as _project
from framework.cli.common import run as _run
from framework.config import ConfigError
from framework.experiments.assignment import assign_unit
from framework.experiments.live import UnknownExperimentError
from framework.experiments.output import to_markdown

SRM_FLAGGED = 6


def _named(fn):
    """Run `fn` as `run` does, except that an experiment the config does not name is an invalid argument:
    exit code 2 with the configured names, as for every other bad argument (not 1, a failure)."""

    def call():
        try:
            return fn()
        except UnknownExperimentError as e:
            raise ConfigError(str(e)) from None
    return _run(call)


ab_app = typer.Typer(no_args_is_help=True, help="A/B experiments: reports, status and assignments.")


@ab_app.command()
def report(name: str, out_dir: Optional[Path] = typer.Option(None, "--out", help="Write here instead of "
                                                             "reports/ab/NAME/<time>/ in the workspace."),
           per_unit: bool = typer.Option(False, "--per-unit", help="One observation per user (the mean of their "
                                         "requests) instead of one per request: requests of one user are correlated."),
           config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Report one experiment: arms, outcomes with intervals, differences to the control, sample-ratio check."""
    project = _run(lambda: _project(config, set_, True))
    result, paths = _named(lambda: project.ab_report(name, folder=out_dir, per_unit=per_unit))
    if as_json:
        print(json.dumps({**result.to_dict(), "files": [str(p) for p in paths]}, indent=2))
    else:
        out.print(escape(to_markdown(result)), highlight=False)
        out.print(f"\nreport: {paths[0].parent}", highlight=False)
    if result.srm.flagged:
        err.print(f"[red]sample ratio mismatch:[/red] p = {result.srm.p_value:.2g}; see the report's first note",
                  highlight=False)
        raise typer.Exit(SRM_FLAGGED)


@ab_app.command("list")
def list_(config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """The configured experiments: running or not, arms and weights, exposures logged."""
    project = _run(lambda: _project(config, set_, True))
    rows = _run(project.experiments.status)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("no experiments configured (`experiments:` in the config; docs/guides/ab-modes.md)")
    for r in rows:
        state = "running" if r["running"] else "disabled" if not r["enabled"] else "not running (dates)"
        arms = ", ".join(f"{a['name']}={a['mode']} x{a['weight']:g}" for a in r["arms"])
        out.print(f"{r['name']}: {state}; arms {arms}; control {r['control']}; {r['exposures']} exposures",
                  highlight=False)


@ab_app.command()
def assign(name: str, unit: str, config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt,
           as_json: bool = JsonOpt):
    """The arm UNIT (a user id, or the request's `user` with unit: end_user) gets in experiment NAME."""
    project = _run(lambda: _project(config, set_, True))
    got = _named(lambda: assign_unit(project.experiments.get(name), unit))
    if as_json:
        print(json.dumps({"experiment": got.experiment, "unit": got.unit_id, "bucket": got.bucket, "arm": got.arm,
                          "mode": got.mode}))
    else:
        out.print(f"{got.unit_id}: bucket {got.bucket} of 10000 -> arm {got.arm} ({got.mode})", highlight=False)
