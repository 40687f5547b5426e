"""`ragtune adapters ...`: the adapter registry from the command line.

list, show (lineage, metrics and staleness), promote, delete, merge, export. Every command
reads the workspace of the project config, like the other commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from framework.adapters.registry import AdapterError, AdapterRef, parse_spec
from framework.adapters.staleness import staleness_since_training
from framework.cli.common import ConfigOpt, JsonOpt, SetOpt, out
from framework.cli.common import project as _project
from framework.cli.common import run as _run
from framework.serving.router import served_version, served_versions

adapters_app = typer.Typer(no_args_is_help=True, help="List, inspect, promote, delete, merge and export trained adapters.")


def _serving(project, name: str) -> str | None:
    return served_version(project.adapters, project.config.router, name, serve=project.config.adapters.serve)


def _chosen(project, name: str, version: str | None) -> AdapterRef:
    """VERSION if given, else the served one; an error saying what to pass when none is served."""
    version = version or _serving(project, name)
    if version is None:
        known = ", ".join(r.version for r in project.adapters.versions(name)) or "none"
        raise AdapterError(f"no version of adapter {name!r} is served (versions: {known}); pass --version, "
                           f"or promote one with `ragtune adapters promote {name} VERSION`")
    return project.adapters.get(name, version)


@adapters_app.command("list")
def list_(config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Every adapter version, with the promoted and the served one marked."""
    project = _run(lambda: _project(config, set_, True))
    reg = project.adapters
    rows = []
    for name in reg.names():
        promoted = reg.promoted(name)
        serving = _run(lambda: served_versions(reg, project.config.router, name, serve=project.config.adapters.serve))
        for ref in reg.versions(name):
            m = ref.manifest
            rows.append({"name": name, "version": ref.version, "promoted": ref.version == promoted,
                         "serving": ref.version in serving, "created_at": m.created_at,
                         "dataset": m.dataset.get("hash", "")[:12], "audience": list(m.audience),
                         "eval_loss": m.metrics.get("eval_loss")})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print(f"no adapters in {reg.root}; train one with `ragtune finetune`")
        return
    out.print(adapters_table(rows))


def adapters_table(rows: list[dict]) -> Table:
    """`adapters list` as a table: names, versions and status never cut (they are what a user types next);
    a narrow terminal wraps the date, dataset and audience columns instead."""
    statuses = [" ".join(s for s, on in (("promoted", r["promoted"]), ("serving", r["serving"])) if on) for r in rows]
    table = Table()
    for col, values in (("name", [r["name"] for r in rows]), ("version", [r["version"] for r in rows]),
                        ("status", statuses)):
        table.add_column(col, no_wrap=True, min_width=max(len(col), *map(len, values)))
    for col in ("created", "dataset", "audience"):
        table.add_column(col, overflow="fold")
    table.add_column("eval loss", no_wrap=True, min_width=9)
    for r, status in zip(rows, statuses):
        loss = r["eval_loss"]
        table.add_row(r["name"], r["version"], status, r["created_at"] or "", r["dataset"],
                      ", ".join(r["audience"]) or "everyone", f"{loss:.4f}" if isinstance(loss, float) else str(loss))
    return table


def _show(project, spec: str) -> tuple[AdapterRef, dict]:
    name, version = parse_spec(spec)
    version = version or _serving(project, name) or getattr(project.adapters.latest(name), "version", None)
    ref = project.adapters.get(name, version) if version else project.adapters.require(name)
    m = ref.manifest
    return ref, staleness_since_training(m.documents, m.document_acl, project.workspace.ledger)


@adapters_app.command()
def show(spec: str = typer.Argument(..., metavar="NAME[@VERSION]"), config: Path = ConfigOpt,
         set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Lineage, settings and metrics of one version (default: the served one, else the newest), and what changed
    since."""
    project = _run(lambda: _project(config, set_, True))
    ref, stale = _run(lambda: _show(project, spec))
    if as_json:
        print(json.dumps({"manifest": ref.manifest.to_dict(), "staleness": stale}, indent=2, ensure_ascii=False))
        return
    m = ref.manifest
    out.print(f"[bold]{ref.name}@{ref.version}[/bold]  created {m.created_at}", highlight=False)
    out.print(f"base: {m.base_model} (fingerprint {m.base_fingerprint})", highlight=False)
    d = m.dataset
    out.print(f"dataset: {d.get('name')} hash {d.get('hash', '')[:12]} created {d.get('created_at')}, "
              f"examples {d.get('examples')}", highlight=False)
    out.print(f"audience: {', '.join(m.audience) or 'everyone (public documents only)'}")
    metrics = {k: v for k, v in m.metrics.items() if k != "eval_loss_per_epoch"}
    out.print(f"metrics: {metrics}", highlight=False)
    out.print(f"documents learned: {len(m.documents)}")
    if stale is None:
        out.print("[yellow]staleness unknown: this workspace has no ingest ledger[/yellow]")
    elif stale["changed"] or stale["acl_changed"] or stale["deleted"]:
        out.print(f"[yellow]stale: {len(stale['changed'])} changed, {len(stale['acl_changed'])} with new readers, "
                  f"{len(stale['deleted'])} deleted since training; retrain (`ragtune synth` then "
                  "`ragtune finetune`) to learn the current text and access[/yellow]")
        for kind, label in (("changed", "changed"), ("acl_changed", "readers"), ("deleted", "deleted")):
            for doc in stale[kind]:
                out.print(f"  {label:<8} {doc}", highlight=False)
    else:
        out.print("up to date: every document it learned from is unchanged")


@adapters_app.command()
def promote(name: str, version: str, config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt):
    """Make VERSION the one the router serves (unless config pins another); live with the next question."""
    project = _run(lambda: _project(config, set_, True))
    ref = _run(lambda: project.adapters.promote(name, version))
    out.print(f"promoted {ref.name}@{ref.version}", highlight=False)


@adapters_app.command()
def delete(name: str, version: str, force: bool = typer.Option(False, "--force", help="Delete even if promoted."),
           config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt):
    """Delete one version (the promoted one only with --force)."""
    project = _run(lambda: _project(config, set_, True))
    _run(lambda: project.adapters.delete(name, version, force=force))
    out.print(f"deleted {name}@{version}", highlight=False)


@adapters_app.command()
def merge(name: str, version: Optional[str] = typer.Option(None, "--version", help="default: the served version"),
          out_dir: Optional[Path] = typer.Option(None, "--out", help="default: <workspace>/merged/NAME-VERSION"),
          config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Write base + adapter as one verified model folder (safetensors, config, tokenizer)."""
    from framework.adapters.merge import merge_adapter

    project = _run(lambda: _project(config, set_, True))

    def work() -> dict:
        ref = _chosen(project, name, version)
        target = out_dir or project.workspace.merged(ref.key)
        return {**merge_adapter(project.base_model_dir, ref, target), "out": str(target)}

    report = _run(work)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    out.print(f"merged {report['adapter']} into {report['out']}: {report['changed_tensors']}/{report['total_tensors']} "
              f"tensors changed (max {report['max_weight_delta']:.2e}), logits match the adapter within "
              f"{report['max_logit_diff']:.1e}", highlight=False)


@adapters_app.command()
def export(name: str, version: Optional[str] = typer.Option(None, "--version", help="default: the served version"),
           out_dir: Optional[Path] = typer.Option(None, "--out", help="default: <workspace>/exports/NAME-VERSION"),
           base: Optional[str] = typer.Option(None, "--base", help="the base model as the serving side names it "
                                              "(default: the local base folder)"),
           config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Write a plain peft folder that vLLM and other servers load (see docs/guides/serving.md)."""
    from framework.adapters.export import export_adapter

    project = _run(lambda: _project(config, set_, True))

    def work() -> dict:
        ref = _chosen(project, name, version)
        target = out_dir or project.workspace.exports(ref.key)
        return {**export_adapter(ref, target, base_dir=project.base_model_dir, base_model=base), "out": str(target)}

    report = _run(work)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    out.print(f"exported {report['adapter']} to {report['out']} (rank {report['rank']}, "
              f"modules {','.join(report['target_modules'])}, base {report['base_model']}); audience: "
              f"{','.join(report['audience']) or 'everyone'}", highlight=False)
