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

from framework.cli.adapters import adapters_app
from framework.cli.common import ConfigOpt, GroupOpt, JsonOpt, SetOpt, UserOpt, err, out, project, run
from framework.evaluation.report import markdown_table
from framework.evaluation.run import Comparison
from framework.records import ANSWER_MODES, MODES, Principal

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Teach a language model your documents.")
app.add_typer(adapters_app, name="adapters")


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
def synth(config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Build the synthetic Q/A finetuning set from the indexed chunks."""
    card = run(lambda: project(config, set_, as_json).synthesize())
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
             promote: bool = typer.Option(False, "--promote", help="Serve the new version at once (else it waits "
                                          "for `ragtune adapters promote`).")):
    """Train a LoRA adapter on the dataset (under torchrun / accelerate launch too).

    The new version is served only once promoted: `--promote`, or `ragtune adapters promote NAME VERSION`
    after checking it (or `adapters.serve: latest` in config)."""
    manifest = run(lambda: project(config, set_, as_json).finetune(resume=resume, promote=promote))
    if manifest is None:  # a non-main process of a distributed run: the main one reports
        return
    if as_json:
        print(json.dumps({k: v for k, v in manifest.to_dict().items() if k != "documents"}, indent=2))
    else:
        out.print(f"adapter {manifest.name}/{manifest.version}: {dict(manifest.metrics)}")
        out.print(f"promoted {manifest.name}@{manifest.version}: served from the next question" if promote else
                  f"not served yet: `ragtune adapters promote {manifest.name} {manifest.version}` makes it live",
                  highlight=False)


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
                                                    help="JSONL with question, answer and optional document "
                                                         "fields; default: the eval split"),
          modes: str = typer.Option(",".join(ANSWER_MODES), "--modes"),
          retrieval_only: bool = typer.Option(False, "--retrieval-only",
                                              help="Score retrieval only (hit@k, recall@k, MRR); no generation."),
          calibrate: bool = typer.Option(False, "--calibrate", help="With --retrieval-only: also fit retrieval "
                                         "confidence on these questions and save it beside the index."),
          user: str = UserOpt, group: Optional[List[str]] = GroupOpt,
          config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Score the modes on the same held-out questions and write a report.

    Questions are asked as `--user`/`--group`: documents and adapters outside those groups
    are not used, exactly as when that user asks."""
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
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    result = run(lambda: proj.evaluate(questions, modes=wanted, principal=principal))
    if as_json:
        print(json.dumps({"results": result.to_dict(), "report": str(result.report.with_suffix(".json"))}, indent=2,
                         ensure_ascii=False))
    else:
        out.print(markdown_table(result.to_dict()))
        out.print(f"report: {result.report}")


@app.command()
def serve(host: Optional[str] = typer.Option(None, "--host", help="Interface to bind; default serve.host (127.0.0.1)."),
          port: Optional[int] = typer.Option(None, "--port", help="Default serve.port (8100)."),
          config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt):
    """Serve the OpenAI-compatible HTTP API: /v1/chat/completions, /v1/models, /health, /metrics.

    Callers authenticate with the bearer tokens of serve.tokens (docs/guides/serving.md)."""
    from framework.serving.auth import TokenTable
    from framework.serving.server import create_app
    from framework.serving.server import run as run_server

    proj = run(lambda: project(config, set_, True))
    cfg = proj.config.serve
    tokens = run(lambda: TokenTable.from_config(cfg.tokens, environ=os.environ))
    api = run(lambda: create_app(proj.router, cfg, tokens=tokens))  # loads the model before the first request
    where = f"http://{host or cfg.host}:{cfg.port if port is None else port}"
    err.print(f"ragtune serving on {where}/v1 for {len(tokens.principals)} token(s); models: GET {where}/v1/models",
              highlight=False)
    run_server(api, host=host or cfg.host, port=cfg.port if port is None else port)


@app.command()
def demo(workspace: Path = typer.Option(Path(".ragtune-demo"), "--workspace"),
         set_: Optional[List[str]] = SetOpt):
    """Run the whole pipeline on the bundled fictional company and print the comparison."""
    from framework.cli.demo import SIDE_BY_SIDE, run_demo

    done = run(lambda: run_demo(workspace=workspace, overrides=set_ or [], say=out.print))
    out.print("\n[bold]Four modes on 40 held-out questions[/bold]\n")
    out.print(markdown_table(done["result"].to_dict()))
    for q in SIDE_BY_SIDE:
        out.print(comparison_table(done["project"].compare(q)))
    out.print(f"timings (s): {done['timings']}")
    out.print(f"report: {done['result'].report}")
