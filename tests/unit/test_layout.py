"""The runtime package's shape: an import graph without cycles, a docstring on every module,
a module form of the command line that lists every command, and no module or function
over its size limit."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import REPO

RUNTIME = ("liquidity_core", "webapp", "plugins", "dags")


def _modules() -> dict[str, object]:
    found = {}
    for root in RUNTIME:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path, modules: dict) -> set[str]:
    """Runtime-package modules that ``name`` imports, anywhere in it (not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    done, path = set(), []

    def visit(node):
        if node in path:
            cycle = path[path.index(node) :] + [node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        path.pop()
        done.add(node)

    for name in sorted(graph):
        visit(name)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_module_says_what_it_does(name):
    path = _modules()[name]
    text = path.read_text(encoding="utf-8")
    assert ast.get_docstring(ast.parse(text)), f"{path} has no opening docstring"


COMMANDS = (
    "db",
    "ingest",
    "demo-data",
    "train",
    "models",
    "rollback",
    "predict",
    "forecast",
    "monitor",
    "report",
    "keys",
)


def test_the_module_form_of_the_cli_lists_every_command():
    import liquidity_core.cli  # noqa: F401 - registers every command
    from liquidity_core.cli.commands import COMMANDS as registered

    assert set(registered) == set(COMMANDS)
    proc = subprocess.run(
        [sys.executable, "-m", "liquidity_core.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert listed == list(registered), proc.stdout


def test_the_import_linter_contracts_hold():
    """The layers in pyproject.toml ([tool.importlinter]) are the one map of the packages."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " kept, 0 broken" in proc.stdout, proc.stdout[-4000:]


def _private_imports() -> list[str]:
    """``from a.b import _name`` across modules of the runtime packages."""
    found = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(RUNTIME):
                hidden = [a.name for a in node.names if a.name.startswith("_")]
                if hidden and node.module != name:
                    found.append(f"{name} imports {', '.join(hidden)} from {node.module}")
    return found


def test_no_private_name_is_imported_across_modules():
    """What two modules share is public in the lower one."""
    assert _private_imports() == []


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 100


def test_no_runtime_module_is_over_400_lines():
    """A module over the limit is split along its sections, into modules of the same package."""
    offenders = []
    for path in _modules().values():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            offenders.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert offenders == [], f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


def test_no_function_is_over_100_lines():
    """Each function, nested ones counted on their own, from its def line to its last line."""
    offenders = []
    for path in _modules().values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    offenders.append(f"{where} {node.name}: {lines} lines")
    assert offenders == [], f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)
