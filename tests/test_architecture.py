"""The package layout's rules, checked by walking every import in the source tree.

- the stages import only the foundation and stages before them (ingest, retrieval, dataset,
  adapters, training, experiments, serving, evaluation, integrations, refresh, cli);
- connectors import only records and the ingest contract; only project.py and cli/ import them;
- no package imports project or cli; no import cycles;
- importing a record, the package or a connector never loads torch;
- no module binds a top-level name twice (the second silently replaces the first).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "retrieval", "dataset", "adapters", "training", "experiments", "serving", "evaluation",
          "integrations", "refresh", "cli")
FOUNDATION = {"framework", "framework.records", "framework.config", "framework.workspace", "framework.prompts",
              "framework.text"}
CONTRACT = {"framework.records", "framework.ingest.contract", "framework.ingest.acl"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    files = [*ROOT.glob("framework/**/*.py"), *ROOT.glob("connectors/**/*.py")]
    return {_module_name(p): p for p in files}


MODULES = _modules()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every framework/connectors import, module-level or inside functions."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from framework import prompts` imports the module framework.prompts
                full = f"{node.module}.{a.name}"
                out.append((node.lineno, full if full in MODULES else node.module))
    return [(line, m) for line, m in out if m.split(".")[0] in ("framework", "connectors")]


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "framework" and parts[1] in STAGES else None


def _foundation(module: str) -> bool:
    return module in FOUNDATION or module.startswith("framework.runtime")


def _violation(importer: str, imported: str) -> str | None:
    if importer.startswith("connectors"):
        if imported.startswith("framework") and imported not in CONTRACT:
            return "connectors import only framework.records and the ingest contract (contract, acl)"
        return None
    if imported.startswith("connectors") and importer != "framework.project" and _stage(importer) != "cli":
        return "only framework/project.py and framework/cli/ import connectors"
    if imported in ("framework.project",) or _stage(imported) == "cli":
        if importer not in ("framework.project", "framework.__main__") and _stage(importer) != "cli":
            return "no package imports framework.project or framework.cli"
        return None
    if importer in ("framework.project", "framework.__main__"):
        return None
    if _foundation(importer):
        ok = _foundation(imported) or imported == "framework.ingest.contract"
        return None if ok else "the foundation (records, config, workspace, prompts, runtime) imports no stage"
    mine, theirs = _stage(importer), _stage(imported)
    if theirs is not None and STAGES.index(theirs) > STAGES.index(mine):
        return f"stage {mine} imports a later stage ({theirs}); the order is {' < '.join(STAGES)}"
    return None


def test_import_rules():
    problems = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {imp}: {why}"
                for m in sorted(MODULES) for line, imp in _imports(MODULES[m])
                if (why := _violation(m, imp))]
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    graph = {m: {i for _, i in _imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue  # a package and its own modules
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_rules_catch_violations():
    assert _violation("framework.retrieval.index", "framework.serving.generator")
    assert _violation("connectors.files", "framework.ingest.pipeline")
    assert _violation("framework.dataset.pipeline", "connectors")
    assert _violation("framework.serving.router", "framework.project")
    assert _violation("framework.records", "framework.ingest.chunking")
    assert not _violation("framework.serving.router", "framework.retrieval.retriever")
    assert not _violation("framework.serving.router", "framework.experiments.assignment")
    assert _violation("framework.experiments.report", "framework.evaluation.stats")
    assert not _violation("framework.integrations.llama_index", "framework.serving.router")
    assert _violation("framework.serving.server", "framework.integrations.llama_index")
    assert _violation("framework.integrations.llama_index", "framework.project")
    assert not _violation("connectors.slack", "framework.ingest.contract")
    assert not _violation("framework.cli.main", "framework.project")
    assert not _violation("framework.refresh.run", "framework.evaluation.run")
    assert not _violation("framework.refresh.run", "framework.training.run")
    assert _violation("framework.evaluation.run", "framework.refresh.gate")
    assert _violation("framework.refresh.run", "framework.project")
    assert not _violation("framework.cli.refresh_view", "framework.refresh.report")


def _top_level_names(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Assign):
            out += [(node.lineno, t.id) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.append((node.lineno, node.target.id))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append((node.lineno, node.name))
    return out


def test_no_module_binds_a_top_level_name_twice():
    problems = []
    for m in sorted(MODULES):
        first: dict[str, int] = {}
        for line, name in _top_level_names(MODULES[m]):
            if name in first:
                problems.append(f"{MODULES[m].relative_to(ROOT)}:{line} binds {name} again (first at line {first[name]})")
            first.setdefault(name, line)
    assert not problems, "\n".join(problems)


def test_top_level_stays_small():
    top = sorted(p.name for p in (ROOT / "framework").glob("*.py"))
    assert len(top) <= 10, top


def test_project_stays_a_thin_composition_root():
    """Project builds components and hands each verb to its stage; logic that grows here belongs in a stage."""
    [project] = [n for n in ast.parse((ROOT / "framework" / "project.py").read_text()).body
                 if isinstance(n, ast.ClassDef) and n.name == "Project"]
    assert project.end_lineno - project.lineno + 1 < 200


@pytest.mark.parametrize("statement", [
    "import connectors.files", "import connectors", "import framework.records",
    "import framework; framework.Principal", "from framework.config import Config",
])
def test_importing_records_and_connectors_does_not_load_torch(statement):
    code = f"{statement}\nimport sys\nassert 'torch' not in sys.modules, 'torch was imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
