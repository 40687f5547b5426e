"""The `ragtune` command line: a thin layer over framework.Project.

Each command parses its options, calls one Project verb, and prints the result (a rich
table or `--json`). Exit codes are in framework.cli.common.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from framework.cli.ab import ab_app
from framework.cli.adapters import adapters_app
from framework.cli.common import GATE_FAILED, ConfigOpt, GroupOpt, JsonOpt, SetOpt, UserOpt, err, out, project, run
from framework.cli.eval_view import knowledge_notes, show
from framework.evaluation.gate import parse_conditions
from framework.evaluation.run import Comparison
from framework.project import Project, load_config
from framework.records import ANSWER_MODES, MODES, Principal

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Teach a language model your documents.")
app.add_typer(adapters_app, name="adapters")
app.add_typer(ab_app, name="ab")


AdapterOpt = typer.Option(None, "--adapter", help="A named adapter of adapters.profiles: its dataset, "
                          "audience and adapter name replace dataset.name, dataset.audience and finetune.adapter.")


def _project_for(config: Path, set_: Optional[List[str]], quiet: bool, adapter: Optional[str]) -> Project:
    """The project, with the adapter profile `adapter` applied (docs/guides/adapters.md, Team adapters)."""
    if adapter is None:
        return project(config, set_, quiet)
    return Project(load_config(config, set_ or []).for_adapter(adapter), show_progress=not quiet)


@app.command()
def init(path: Path = typer.Argument(Path("ragtune.yaml")), force: bool = typer.Option(False, "--force")):
    """Write a commented starter config."""
    from importlib import resources

    if path.exists() and not force:
        err.print(f"[red]error:[/red] {path} exists; use --force to overwrite")
        raise typer.Exit(1)
    path.write_text((resources.files("framework") / "templates" / "ragtune.yaml").read_text())
    out.print(f"wrote {path}; edit `sources:` then run `ragtune ingest`")


@app.command()
def ingest(config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Index every configured source (incremental: unchanged documents are skipped)."""
    report = run(lambda: project(config, set_, as_json).ingest()).to_dict()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        out.print(f"documents: {report['documents']}")
        out.print(f"chunks embedded: {report['chunks_embedded']}, deleted: {report['chunks_deleted']}")
        for f in report["failures"]:  # each reason names its document, the cause and the fix
            out.print(f"  [yellow]skipped[/yellow] {escape(f['reason'])}", highlight=False)
            for w in f.get("warnings") or ():
                out.print(f"    [dim]warning: {escape(w)}[/dim]", highlight=False)
        for entry in report.get("warnings") or ():
            out.print(f"  [dim]indexed with warnings[/dim] {escape(entry['path'])}: {escape('; '.join(entry['warnings']))}",
                      highlight=False)


@app.command()
def synth(config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt,
          adapter: Optional[str] = AdapterOpt):
    """Build the synthetic Q/A finetuning set from the indexed chunks."""
    card = run(lambda: _project_for(config, set_, as_json, adapter).synthesize())
    if as_json:
        print(json.dumps({k: v for k, v in card.to_dict().items() if k != "documents"}, indent=2))
    else:
        out.print(f"dataset {card.name}/{card.version}: generated {card.generated}, kept {card.kept}")
        out.print(f"dropped per filter: {dict(card.dropped)}")
        out.print(f"split: {dict(card.split)}")
        out.print(f"round trip: {dict(card.round_trip)}")
        out.print(f"pii redacted before generation: {card.pii.get('chunks', {}).get('redacted')}; "
                  f"at the last scan: {card.pii.get('written', {}).get('redacted')}", highlight=False)
        out.print(f"incremental: {dict(card.incremental)}")


@app.command()
def finetune(config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt,
             resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run from its checkpoint."),
             promote: bool = typer.Option(False, "--promote", help="Serve the new version once finetune.gate passes on "
                                          "the eval split (else it waits for `ragtune adapters promote`)."),
             dry_run: bool = typer.Option(False, "--dry-run", help="Only print the estimate: examples, tokens and "
                                          "the duration at the tokens/s a few real training steps measure here."),
             adapter: Optional[str] = AdapterOpt):
    """Train a LoRA adapter on the dataset (under torchrun / accelerate launch too).

    Prints the estimated duration first (measured with 3 real training steps on this
    machine); --dry-run stops there. The new version is served only once promoted:
    `--promote` (once finetune.gate passes on the eval split; exit code 4 when it fails),
    or `ragtune adapters promote NAME VERSION` after checking it (or `adapters.serve: latest`)."""
    proj = run(lambda: _project_for(config, set_, as_json, adapter))
    if dry_run or int(os.environ.get("WORLD_SIZE", "1")) == 1:  # a distributed run does not stop to measure
        if not dry_run:  # another run of this adapter: say so now, not after the estimate's training steps
            from framework.training.lock import check_free

            adapter = proj.config.finetune.adapter
            run(lambda: check_free(proj.workspace.training_lock(adapter), adapter))
        from framework.training.run import estimate_run_memory

        memory = run(lambda: estimate_run_memory(  # first: instant, and says why a run would not fit
            dataset_dir=proj.dataset_dir(), base_model_dir=proj.base_model_dir, cfg=proj.config.finetune,
            precision=proj.config.precision, device=proj.device))
        (out if dry_run and not as_json else err).print(memory.describe(), highlight=False)
        estimate = run(proj.estimate_finetune)
        if dry_run:
            if as_json:
                print(json.dumps({**estimate.to_dict(), "memory": memory.to_dict()}, indent=2))
            else:
                out.print(estimate.describe(), highlight=False)
            return
        err.print(estimate.describe(), highlight=False)
    manifest = run(lambda: proj.finetune(resume=resume, promote=promote))
    if manifest is None:  # a non-main process of a distributed run: the main one reports
        return
    if as_json:
        print(json.dumps({k: v for k, v in manifest.to_dict().items() if k != "documents"}, indent=2))
    else:
        out.print(f"adapter {manifest.name}/{manifest.version}: {dict(manifest.metrics)}")
        promoted = promote and manifest.promotion.get("promoted", True)
        out.print(f"promoted {manifest.name}@{manifest.version}: served from the next question" if promoted else
                  manifest.promotion.get("reason") if promote else
                  f"not served yet: `ragtune adapters promote {manifest.name} {manifest.version}` makes it live",
                  highlight=False)
    if promote and manifest.promotion.get("promoted") is False:
        raise typer.Exit(GATE_FAILED)  # trained and published, not promoted: finetune.gate failed


@app.command()
def refresh(dry_run: bool = typer.Option(False, "--dry-run", help="Only print the plan and the estimated time: "
                                         "nothing is ingested, trained or promoted."),
            force: bool = typer.Option(False, "--force", help="Train a new candidate even where one was already "
                                       "rejected by the gate for the same changes."),
            config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt,
            adapter: Optional[str] = AdapterOpt):
    """Changed documents to a new, gated, promoted adapter version, in one command.

    Ingests the changes, synthesizes questions for the new and changed chunks only, trains a
    candidate warm-started from the serving version (new and changed examples plus a replay
    sample), evaluates it against the serving version and promotes it only if refresh.gate
    passes. Killed at any step, the next run resumes. Exit codes: 0 promoted (or, with
    --dry-run, a plan), 5 nothing to do, 4 gate failed (the serving version stays), 1, 2 or 3
    an error. Scheduling: docs/guides/adapters.md."""
    from framework.cli.refresh_view import EXIT_CODES
    from framework.cli.refresh_view import show as show_refresh

    report = run(lambda: _project_for(config, set_, as_json, adapter).refresh(dry_run=dry_run, force=force))
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        show_refresh(report, out)
    raise typer.Exit(EXIT_CODES[report.outcome])


@app.command()
def ask(question: str, mode: Optional[str] = typer.Option(None, "--mode", "-m", help=" | ".join(MODES)),
        user: str = UserOpt, group: Optional[List[str]] = GroupOpt,
        config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Answer one question."""
    answer = run(lambda: project(config, set_, True).ask(question, mode=mode, user=user, groups=group or ()))
    if as_json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return
    out.print(answer.text, highlight=False)
    cut = ", cut at the token budget" if answer.truncated else ""
    out.print(f"[dim]mode {answer.mode} ({answer.reason}), {answer.latency_s:.2f}s{cut}[/dim]", highlight=False)
    for e in answer.evidence:
        out.print(f"[green]evidence[/green] \"{e.text}\" [dim]{_where(e)}[/dim]", highlight=False)
    for i, s in enumerate(answer.sources, 1):
        out.print(f"[dim][{i}] {s.title} ({s.uri}) score {s.score:.3f}[/dim]", highlight=False)


def _where(evidence) -> str:
    """Title, section and uri of a piece of evidence (the uri carries #page=N for PDFs)."""
    section = f" > {evidence.section}" if evidence.section and evidence.section != evidence.title else ""
    return f"{evidence.title}{section} ({evidence.uri})"


def comparison_table(comparison: Comparison) -> Table:
    table = Table(title=comparison.question, show_lines=True)
    for col in ("mode", "answer", "evidence"):
        table.add_column(col, overflow="fold")
    for mode, answer in comparison.answers.items():
        evidence = "\n".join(f"\"{e.text}\" ({_where(e)})" for e in answer.evidence)
        table.add_row(mode, answer.text, evidence or ", ".join(s.title for s in answer.sources) or "-")
    for mode, why in comparison.refused.items():
        table.add_row(mode, f"(refused: {why})", "-")
    return table


@app.command()
def compare(question: str, user: str = UserOpt, group: Optional[List[str]] = GroupOpt,
            config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Answer one question in all four modes, side by side."""
    principal = Principal(user=user, groups=tuple(group or ()))
    result = run(lambda: project(config, set_, True).compare(question, principal=principal))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        out.print(comparison_table(result))


@app.command("eval")
def eval_(questions: Optional[Path] = typer.Option(None, "--questions", "-q",
                                                    help="A JSONL or CSV file: question, answer, optional sources "
                                                         "(document ids, file names, uris, file.pdf#page=N) and "
                                                         "split_kind. Default: the dataset's eval split."),
          modes: str = typer.Option(",".join(ANSWER_MODES), "--modes",
                                    help="Comma-separated modes: prompt_only, rag, finetuned, combined, auto."),
          adapters: str = typer.Option("", "--adapters", help="Adapter versions side by side, e.g. v0003,v0004: "
                                       "each mode that uses the adapter gets a row per version (finetuned@v0003)."),
          baseline: Optional[str] = typer.Option(None, "--baseline", help="The row the others are compared with, "
                                                 "paired on the same questions (default: rag)."),
          gate: Optional[List[str]] = typer.Option(None, "--gate", help="A condition the run must meet, e.g. "
                                                   "'combined.token_f1 >= rag.token_f1' or "
                                                   "'combined.token_f1.delta.low > 0' (repeatable). Exit code 4 "
                                                   "when one fails."),
          retrieval_only: bool = typer.Option(False, "--retrieval-only",
                                              help="Score retrieval only (hit@k, recall@k, MRR); no generation."),
          calibrate: bool = typer.Option(False, "--calibrate", help="With --retrieval-only: also fit retrieval "
                                         "confidence on these questions and save it beside the index."),
          user: str = UserOpt, group: Optional[List[str]] = GroupOpt,
          config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Score the modes on the same questions, with 95% intervals, paired differences and gates.

    Writes reports/TIMESTAMP/ in the workspace: report.md, report.json, questions.csv and
    charts. Questions are asked as --user / --group: documents and adapters outside those
    groups are not used, exactly as when that user asks; a refused mode is a row that says why."""
    run(lambda: parse_conditions(gate or ()))  # a typo in a gate fails before any model loads
    proj = run(lambda: project(config, set_, as_json))
    principal = Principal(user=user, groups=tuple(group or ()))
    if retrieval_only:
        metrics = run(lambda: proj.evaluate_retrieval(questions, principal=principal))
        if calibrate:
            metrics["calibration"] = run(lambda: proj.calibrate(questions, principal=principal))
        if as_json:
            print(json.dumps(metrics, indent=2))
        else:
            out.print(" ".join(f"{k}={v}" for k, v in metrics.items()))
        return
    result = run(lambda: proj.evaluate(questions, modes=_names(modes), adapters=_names(adapters), baseline=baseline,
                                       gates=gate or (), principal=principal))
    if as_json:
        print(json.dumps({**result.to_dict(), "report": str(result.report.with_suffix(".json"))}, indent=2,
                         ensure_ascii=False))
    else:
        show(result, out)
        for note in knowledge_notes(result, proj.adapters):
            out.print(note, highlight=False)
        out.print(f"report: {result.report.parent}", highlight=False)
    if result.gates and not result.gates.passed:
        failed = ", ".join(c.condition for c in result.gates.failures)
        err.print(f"[red]gate failed:[/red] {failed}", highlight=False)
        raise typer.Exit(GATE_FAILED)


def _names(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


@app.command()
def serve(host: Optional[str] = typer.Option(None, "--host", help="Interface to bind; default serve.host (127.0.0.1)."),
          port: Optional[int] = typer.Option(None, "--port", help="Default serve.port (8100)."),
          log_level: Optional[str] = typer.Option(None, "--log-level", help="debug, info (one line per request), "
                                                  "warning (refusals and problems) or error; default serve.log_level."),
          log_format: Optional[str] = typer.Option(None, "--log-format", help="plain or json (JSON lines); default "
                                                   "serve.log_format."),
          config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt):
    """Serve the OpenAI-compatible HTTP API: /v1/chat/completions, /v1/models, /health, /metrics.

    Callers authenticate with the bearer tokens of serve.tokens (docs/guides/serving.md)."""
    from framework.serving import server_log
    from framework.serving.ab import check_arms
    from framework.serving.auth import TokenTable
    from framework.serving.server import create_app
    from framework.serving.server import run as run_server

    overrides = [*(set_ or []), *([f"serve.log_level={log_level}"] if log_level else []),
                 *([f"serve.log_format={log_format}"] if log_format else [])]
    proj = run(lambda: project(config, overrides, True))
    cfg = proj.config.serve
    server_log.configure(cfg.log_level, cfg.log_format)
    tokens = run(lambda: TokenTable.from_config(cfg.tokens, environ=os.environ))
    run(lambda: check_arms(proj.experiments.configs, proj.adapters, serve=proj.config.adapters.serve))
    api = run(lambda: create_app(proj.router, cfg, tokens=tokens, experiments=proj.experiments))  # loads the model
    where = f"http://{host or cfg.host}:{cfg.port if port is None else port}"
    server_log.startup(proj.router, precision=proj.config.precision, where=where, tokens=len(tokens.principals),
                       experiments=proj.experiments)
    run_server(api, host=host or cfg.host, port=cfg.port if port is None else port, log_level=cfg.log_level)


@app.command()
def demo(workspace: Path = typer.Option(Path(".ragtune-demo"), "--workspace"),
         set_: Optional[List[str]] = SetOpt):
    """Run the whole pipeline on the bundled fictional company and print the comparison."""
    from framework.cli.demo import SIDE_BY_SIDE, run_demo

    done = run(lambda: run_demo(workspace=workspace, overrides=set_ or [], say=out.print))
    out.print("\n[bold]Four modes on 40 held-out questions[/bold]\n")
    show(done["result"], out)
    for q in SIDE_BY_SIDE:
        out.print(comparison_table(done["project"].compare(q)))
    out.print(f"timings (s): {done['timings']}")
    out.print(f"report: {done['result'].report.parent}", highlight=False)
