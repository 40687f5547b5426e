"""The `ragtune` command line: a thin layer over framework.Project.

Exit codes: 0 success, 1 failure (bad input, empty index...), 2 invalid config or
arguments, 3 refused (e.g. a mode that needs an adapter nobody trained).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from framework.adapters import AdapterError
from framework.config import ConfigError, load_config
from framework.models import ModelNotFoundError
from framework.project import Project
from framework.records import Principal
from framework.report import markdown_table, write_report
from framework.router import UnknownModeError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Teach a language model your documents.")
out = Console()
err = Console(stderr=True, soft_wrap=True)
MODES = ("prompt_only", "rag", "finetuned", "combined")

ConfigOpt = typer.Option(Path("ragtune.yaml"), "--config", "-c", help="Project config file.")
SetOpt = typer.Option(None, "--set", "-s", help="Override a config key: key.path=value (repeatable).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def _quiet_libraries() -> None:
    """Keep the terminal for ragtune's own progress: no per-load bars, no upstream deprecation notes."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _run(fn: Callable):
    """Turn the errors users can fix into one clear line and a scriptable exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    _quiet_libraries()
    try:
        return fn()
    except (ConfigError, UnknownModeError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2)
    except (AdapterError, PermissionError) as e:
        err.print(f"[red]refused:[/red] {e}", highlight=False)
        raise typer.Exit(3)
    except (ModelNotFoundError, OSError, ValueError, RuntimeError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(1)


def _project(config: Path, overrides: Optional[List[str]], quiet: bool = False) -> Project:
    return Project(load_config(config, overrides or []), show_progress=not quiet)


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
    report = _run(lambda: _project(config, set_, as_json).ingest()).to_dict()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        out.print(f"documents: {report['documents']}")
        out.print(f"chunks embedded: {report['chunks_embedded']}, deleted: {report['chunks_deleted']}")
        for f in report["failures"]:
            out.print(f"  [yellow]skipped[/yellow] {f.get('path') or f['uri']}: {f['reason']}", highlight=False)


@app.command()
def synth(config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Build the synthetic Q/A finetuning set from the indexed chunks."""
    card = _run(lambda: _project(config, set_, as_json).synthesize())
    if as_json:
        print(json.dumps({k: v for k, v in card.items() if k != "documents"}, indent=2))
    else:
        out.print(f"dataset {card['name']}/{card['version']}: generated {card['generated']}, kept {card['kept']}")
        out.print(f"dropped per filter: {card['dropped']}")
        out.print(f"split: {card['split']}")
        out.print(f"round trip: {card['round_trip']}; pii found: {card['pii']['found']}")
        out.print(f"incremental: {card['incremental']}")


@app.command()
def finetune(config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt,
             resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run from its checkpoint.")):
    """Train a LoRA adapter on the dataset (under torchrun / accelerate launch too)."""
    manifest = _run(lambda: _project(config, set_, as_json).finetune(resume=resume))
    if not manifest:  # a non-main process of a distributed run: the main one reports
        return
    if as_json:
        print(json.dumps({k: v for k, v in manifest.items() if k != "documents"}, indent=2))
    else:
        out.print(f"adapter {manifest['name']}/{manifest['version']}: {manifest['metrics']}")


@app.command()
def ask(question: str, mode: Optional[str] = typer.Option(None, "--mode", "-m", help="|".join(MODES) + "|auto"),
        user: str = typer.Option("anonymous", "--user"), group: Optional[List[str]] = typer.Option(None, "--group", "-g"),
        config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Answer one question."""
    answer = _run(lambda: _project(config, set_, True).ask(question, mode=mode, user=user, groups=group or ()))
    if as_json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return
    out.print(answer.text, highlight=False)
    out.print(f"[dim]mode {answer.mode} ({answer.reason}), {answer.latency_s:.2f}s[/dim]")
    for i, s in enumerate(answer.sources, 1):
        out.print(f"[dim][{i}] {s.title} ({s.uri}) score {s.score:.3f}[/dim]", highlight=False)


def _compare_table(project: Project, question: str, principal: Principal) -> Table:
    table = Table(title=question, show_lines=True)
    for col in ("mode", "answer", "sources"):
        table.add_column(col, overflow="fold")
    for mode in MODES:
        try:
            a = project.ask_many([question], mode=mode, principal=principal)[0]
            table.add_row(mode, a.text, ", ".join(s.title for s in a.sources) or "-")
        except (AdapterError, PermissionError) as e:
            table.add_row(mode, f"(refused: {e})", "-")
    return table


@app.command()
def compare(question: str, user: str = typer.Option("anonymous", "--user"),
            group: Optional[List[str]] = typer.Option(None, "--group", "-g"),
            config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt):
    """Answer one question in all four modes, side by side."""
    project = _run(lambda: _project(config, set_, True))
    out.print(_run(lambda: _compare_table(project, question, Principal(user=user, groups=tuple(group or ())))))


@app.command("eval")
def eval_(questions: Optional[Path] = typer.Option(None, "--questions", "-q",
                                                    help="JSONL of question/answer[/document]; default: eval split"),
          modes: str = typer.Option(",".join(MODES), "--modes"),
          retrieval_only: bool = typer.Option(False, "--retrieval-only",
                                              help="Score retrieval only (hit@k, recall@k, MRR); no generation."),
          calibrate: bool = typer.Option(False, "--calibrate", help="With --retrieval-only: also fit retrieval "
                                         "confidence on these questions and save it beside the index."),
          user: str = typer.Option("anonymous", "--user"),
          group: Optional[List[str]] = typer.Option(None, "--group", "-g",
                                                    help="groups of the user the questions are asked as"),
          config: Path = ConfigOpt, set_: Optional[List[str]] = SetOpt, as_json: bool = JsonOpt):
    """Score the modes on the same held-out questions and write a report.

    Questions are asked as `--user`/`--group`: documents and adapters outside those groups
    are not used, exactly as when that user asks."""
    project = _run(lambda: _project(config, set_, as_json))
    principal = Principal(user=user, groups=tuple(group or ()))
    if retrieval_only:
        metrics = _run(lambda: project.evaluate_retrieval(questions, principal=principal))
        if calibrate:
            metrics["calibration"] = _run(lambda: project.calibrate(questions, principal=principal))
        if as_json:
            print(json.dumps(metrics, indent=2))
        else:
            out.print(" ".join(f"{k}={v}" for k, v in metrics.items()))
        return
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    results = _run(lambda: project.evaluate(questions, modes=wanted, principal=principal))
    md, js = write_report(project.workspace, "ragtune eval", results)
    if as_json:
        print(json.dumps({"results": results, "report": str(js)}, indent=2, ensure_ascii=False))
    else:
        out.print(markdown_table(results))
        out.print(f"report: {md}")


@app.command()
def demo(workspace: Path = typer.Option(Path(".ragtune-demo"), "--workspace"),
         set_: Optional[List[str]] = SetOpt):
    """Run the whole pipeline on the bundled fictional company and print the comparison."""
    from framework.demo_run import run_demo

    result = _run(lambda: run_demo(workspace=workspace, overrides=set_ or [], say=out.print))
    results, project = result["results"], result["project"]
    table = markdown_table(results)
    out.print("\n[bold]Four modes on 40 held-out questions[/bold]\n")
    out.print(table)
    md, _ = write_report(project.workspace, "ragtune demo", results,
                         {"timings_s": result["timings"], "dataset": result["card"]["split"],
                          "adapter": result["manifest"]["metrics"]})
    for q in ("How long do I have to hand in my receipts?", "What does the cheapest Lumen Ledger plan cost?"):
        out.print(_compare_table(project, q, Principal()))
    out.print(f"timings (s): {result['timings']}")
    out.print(f"report: {md}")


from framework.cli_adapters import adapters_app  # noqa: E402 - it uses the functions above

app.add_typer(adapters_app, name="adapters")
