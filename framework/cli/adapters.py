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

from framework.adapters.registry import AdapterError, AdapterRef, config_pins, parse_spec
from framework.adapters.staleness import staleness_since_training
from framework.cli.common import ConfigOpt, JsonOpt, SetOpt, out
from framework.cli.common import project as _project
from framework.cli.common import run as _run
from framework.experiments.live import arm_audience_problems
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


def _arm_versions(project, name: str) -> dict[str, list[str]]:
    """Version -> the enabled experiment arms (experiment/arm) that answer with it: pinned, or the served one."""
    reg, serve, marks = project.adapters, project.config.adapters.serve, {}
    for e in project.config.experiments:
        for a in e.arms if e.enabled else ():
            if a.adapter and parse_spec(a.adapter)[0] == name and (ref := reg.served(a.adapter, serve=serve)):
                marks.setdefault(ref.version, []).append(f"{e.name}/{a.name}")
    return marks


def _router_serves(project, name: str) -> list[str]:
    """The versions of `name` that router config serves (router.adapter, router.group_adapters); none where it
    names the adapter nowhere (its promoted version then serves nobody, unless an arm names it)."""
    r = project.config.router
    if name not in {parse_spec(s)[0] for s in (r.adapter, *r.group_adapters.values())}:
        return []
    return _run(lambda: served_versions(project.adapters, r, name, serve=project.config.adapters.serve))


@adapters_app.command("list")
def list_(config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Every adapter version: promoted, served by the router config ("serving"), and the experiment arms that
    answer with it ("arm EXPERIMENT/ARM")."""
    project = _run(lambda: _project(config, set_, True))
    reg = project.adapters
    rows = []
    for name in reg.names():
        promoted = reg.promoted(name)
        serving, arms = _router_serves(project, name), _arm_versions(project, name)
        for ref in reg.versions(name):
            m = ref.manifest
            rows.append({"name": name, "version": ref.version, "promoted": ref.version == promoted,
                         "serving": ref.version in serving, "arms": arms.get(ref.version, []),
                         "created_at": m.created_at,
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
    statuses = [" ".join([*(s for s, on in (("promoted", r["promoted"]), ("serving", r["serving"])) if on),
                          *(f"arm {a}" for a in r.get("arms", ()))]) for r in rows]
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


def _pct(r: dict) -> str:
    if r.get("accuracy") is None:
        return "n/a"
    interval = f" [{r['low']:.2f}, {r['high']:.2f}]" if r.get("low") is not None else ""
    return f"{r['accuracy']:.2f}{interval} ({r['hits']}/{r['probes']})"


def knowledge_lines(k: dict, promotion: dict) -> list[str]:
    """The knowledge check (base, per epoch, kept) and the promotion verdict, as `adapters show` prints them."""
    lines = []
    if k:
        epochs = ", ".join(f"epoch {e['epoch']:g} {_pct(e)}" for e in k.get("per_epoch", []))
        base = f"base {_pct(k['base'])}; " if k.get("base") else ""
        lines.append(f"knowledge check (closed-book key span, held-out rewordings): {base}{epochs}")
        if "kept_epoch" in k:
            docs = k.get("documents") or {}
            known = sum(1 for d in docs.values() if d.get("known"))
            lines.append(f"kept epoch {k['kept_epoch']:g} ({k['keep']}): {_pct(k)}; documents passing the check: "
                         f"{known} of {len(docs)} probed")
    if promotion:
        lines.append(f"promotion: {'promoted' if promotion.get('promoted') else 'not promoted'}: "
                     f"{promotion.get('reason')}")
    return lines


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
    metrics = {k: v for k, v in m.metrics.items() if k not in ("eval_loss_per_epoch", "rows")}
    out.print(f"metrics: {metrics}", highlight=False)
    if rows := m.metrics.get("rows"):
        out.print("training rows per mode: " + "; ".join(f"{mode} {r['rows']} ({r['trimmed']} trimmed, {r['dropped']} "
                  f"dropped)" for mode, r in sorted(rows["by_mode"].items())) + f" at max_length {rows['max_length']}",
                  highlight=False)
    out.print(f"documents learned: {len(m.documents)}")
    for line in knowledge_lines(m.knowledge, m.promotion):
        out.print(line, highlight=False)
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
    _run(lambda: _promote_checked(project, name, version))
    out.print(f"promoted {name}@{version}", highlight=False)


def _promote_checked(project, name: str, version: str) -> None:
    """Promote, unless the new version leaves out callers of an experiment arm that answers with it (then the
    previous promotion is put back and an AdapterError names the arm: the next load would refuse the config)."""
    reg, before = project.adapters, project.adapters.promoted(name)
    reg.promote(name, version)
    problems = arm_audience_problems(project.config, reg, serve=project.config.adapters.serve)
    if problems:
        if before:
            reg.promote(name, before)
        else:
            reg.unpromote(name)
        raise AdapterError(f"not promoted: {name}@{version} serves fewer groups than an experiment that answers "
                           f"with it; {'; '.join(problems)}")


@adapters_app.command()
def delete(name: str, version: str, force: bool = typer.Option(False, "--force", help="Delete even if promoted "
                                                                "or pinned by the config."),
           config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt):
    """Delete one version (the promoted one, or one the config pins, e.g. in an experiment arm, only with
    --force)."""
    project = _run(lambda: _project(config, set_, True))
    pins = config_pins(project.config, name, version)
    _run(lambda: project.adapters.delete(name, version, force=force, pinned_by=pins))
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
