"""The documents follow the code: the generated configuration table, every ``LIQUIDITY_*``
variable the runtime reads, every CLI command and exit code, every web route, and no lab
notebook left in them."""

import ast
import re

import pytest
from support.paths import REPO

from devtools import config_table

DOCS = REPO / "docs"
#: The code that runs in the product or starts it: where a variable read means a setting.
RUNTIME = ("liquidity_core", "webapp", "devtools", "dags", "plugins")
#: A page another change adds (mutation testing); linked from here before it exists.
PENDING_PAGES = {"testing.md"}
_VAR = re.compile(r"LIQUIDITY_[A-Z0-9_]*[A-Z0-9]")


def _documents() -> dict[str, str]:
    pages = {p.relative_to(REPO).as_posix(): p for p in sorted(DOCS.glob("*.md"))}
    pages["README.md"] = REPO / "README.md"
    return {name: path.read_text(encoding="utf-8") for name, path in pages.items()}


def _all_docs_text() -> str:
    return "\n".join(_documents().values())


def _string_literals(path) -> list[tuple[str, ast.AST, ast.AST | None]]:
    """(text, node, parent call or None) of each string constant in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            parent = parents.get(node)
            if isinstance(parent, ast.keyword):
                parent = parents.get(parent)
            out.append((node.value, node, parent if isinstance(parent, ast.Call) else None))
    return out


def runtime_variables() -> tuple[set[str], set[str]]:
    """The ``LIQUIDITY_*`` variables the runtime code reads: (exact names, prefixes).

    A name is any string constant that is exactly ``LIQUIDITY_...`` (an ``os.environ``
    key, an ``env.get`` argument, a value of ``settings._ENV_NAMES``); a prefix is one
    given to Flask's ``from_prefixed_env``. ``"LIQUIDITY_"`` alone (a filter that strips
    every such variable from a child's environment) reads none.
    """
    names, prefixes = set(), set()
    for root in RUNTIME:
        for path in sorted((REPO / root).rglob("*.py")):
            for text, _node, call in _string_literals(path):
                if not _VAR.fullmatch(text):
                    continue
                if call is not None and ast.unparse(call.func).endswith("from_prefixed_env"):
                    prefixes.add(text)
                else:
                    names.add(text)
    return names, prefixes


def test_the_configuration_table_is_generated_from_the_code():
    current = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert config_table.render(current) == current, (
        "docs/configuration.md is stale: run `python -m devtools.config_table`"
    )


def test_every_settings_field_has_a_documented_variable():
    from liquidity_core.settings import Settings

    rows = config_table.settings_rows()
    fields = [row[1].strip("`") for row in rows]
    assert fields == list(Settings.__dataclass_fields__)
    assert all(row[0].startswith("`LIQUIDITY_") and row[3] for row in rows)


def test_every_variable_the_runtime_reads_is_documented():
    names, prefixes = runtime_variables()
    # The scan itself must see the reads this test exists for.
    expected = {"LIQUIDITY_DATABASE_URL", "LIQUIDITY_FILE_SETTLE_SECONDS", "LIQUIDITY_WEB_PORT"}
    assert expected <= names
    assert "LIQUIDITY_WEB" in prefixes
    configuration = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(n for n in names if f"`{n}`" not in configuration)
    assert not missing, f"read by the code, missing from docs/configuration.md: {missing}"
    for prefix in prefixes:
        assert f"`{prefix}_*`" in _all_docs_text() or f"{prefix}_<" in configuration


def test_every_web_setting_is_documented():
    from webapp import DEFAULTS

    configuration = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(k for k in DEFAULTS if f"`LIQUIDITY_WEB_{k}`" not in configuration)
    assert not missing, f"webapp.DEFAULTS keys missing from docs/configuration.md: {missing}"


def test_the_docs_name_no_variable_that_nothing_reads():
    from webapp import DEFAULTS

    names, prefixes = runtime_variables()
    compose = "\n".join(
        (REPO / f).read_text(encoding="utf-8") for f in ("docker-compose.yml", ".env.example")
    )
    known = names | set(_VAR.findall(compose)) | {f"LIQUIDITY_WEB_{k}" for k in DEFAULTS}
    unknown = {
        (page, var)
        for page, text in _documents().items()
        for var in _VAR.findall(text)
        if var not in known and var not in prefixes
    }
    assert not unknown, f"the docs name variables that nothing reads: {sorted(unknown)}"


def test_every_cli_command_is_documented():
    from liquidity_core.cli import COMMANDS

    cli = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"### `liquidity {name}`" not in cli]
    assert not missing, f"commands without a section in docs/cli.md: {missing}"


def test_every_exit_code_is_documented():
    from liquidity_core.cli import ExitCode

    cli = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [
        code.name
        for code in ExitCode
        if not re.search(rf"^\| {int(code)} \| `{code.name.lower()}` \|", cli, re.MULTILINE)
    ]
    assert not missing, f"exit codes missing from the table in docs/cli.md: {missing}"


def test_every_route_is_documented(tmp_path):
    from liquidity_core.settings import load_settings
    from webapp import create_app

    settings = load_settings({"LIQUIDITY_VAR_DIR": str(tmp_path)})
    app = create_app({"SETTINGS": settings, "PRELOAD_MODEL": False, "TESTING": True})
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    routes = [
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]
    assert ("GET", "/api/v1/docs") in routes
    missing = [f"{m} {r}" for m, r in routes if f"`{m} {r}`" not in api]
    assert not missing, f"routes missing from docs/api.md: {missing}"


@pytest.mark.parametrize("pattern", [r"this round", r"last round", r"\bissue \d+", r"\(issue\)"])
def test_no_lab_notebook_in_the_docs(pattern):
    found = [page for page, text in _documents().items() if re.search(pattern, text, re.IGNORECASE)]
    assert not found, f"{pattern!r} in {found}"


def test_relative_links_resolve():
    broken = []
    for page, text in _documents().items():
        base = (REPO / page).parent
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path = (base / target).resolve()
            if not path.exists() and path.name not in PENDING_PAGES:
                broken.append(f"{page} -> {target}")
    assert not broken, f"broken links: {broken}"


def test_the_readme_keeps_the_two_commands_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make run " in readme and "make test " in readme
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_measurements_live_only_in_performance_md():
    """A latency, a rate or a peak figure outside docs/performance.md goes stale unseen.

    (Sizes such as the 2 MiB body limit are settings, not measurements.)"""
    figure = re.compile(
        r"\b\d[\d,.]*\s?(?:ms|req/s|rows/s)\b|\bp(?:50|90|99)\b[ :=]*\d|\bpeak\b[^.|\n]*\d\s?[MG]iB"
    )
    found = {
        page: figure.findall(text)
        for page, text in _documents().items()
        if page != "docs/performance.md" and figure.findall(text)
    }
    assert not found, f"measurements outside docs/performance.md: {found}"
