"""The built wheel, installed with its own declared dependencies, is a working product.

This is what a newcomer's ``pip install .`` does, so the wheel is installed WITH its
dependencies (not ``--no-deps`` on top of the lock, which would hide a dependency missing
from pyproject.toml): ``uv pip install --constraint requirements.txt <wheel>`` into a fresh
virtualenv outside the checkout. The lock only chooses the versions; every package comes in
because pyproject.toml asks for it. uv's cache makes this a few seconds when warm.

Then, from a temporary folder outside the checkout (so nothing can be read from the
repository by accident; the migrations and queries must come from the installed package
data), the CLI runs its main commands, the web app serves the model they trained over HTTP
from gunicorn, and the modules compose relies on import.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support.net import free_port

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.txt"


def _uv() -> str | None:
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.exists() else shutil.which("uv")


def _run(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def _pins(lock: Path) -> dict[str, str]:
    return {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", lock.read_text(), re.M)
    }


def test_the_locks_satisfy_pyproject():
    """requirements.txt pins every runtime dependency of pyproject.toml at a version its
    bound allows, requirements-dev.txt the dev extra too, and the two locks agree: edit
    pyproject.toml, then `make lock`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime, dev = _pins(LOCK), _pins(REPO / "requirements-dev.txt")
    for lock, requirements in (
        (runtime, project["dependencies"]),
        (dev, project["dependencies"] + project["optional-dependencies"]["dev"]),
    ):
        for text in requirements:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            assert name in lock, f"{req.name} is not in the lock: run make lock"
            assert req.specifier.contains(lock[name], prereleases=True), (text, lock[name])
    assert {name: dev[name] for name in runtime if name in dev} == runtime


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from this checkout, through an sdist (so the sdist is complete too)."""
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed")
    dist = tmp_path_factory.mktemp("dist")
    _run(uv, "build", "-q", "--out-dir", str(dist), str(REPO))
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    uv = _uv()
    venv = tmp_path_factory.mktemp("install") / "venv"
    _run(uv, "venv", "-q", "--python", sys.executable, str(venv))
    py = str(venv / "bin" / "python")
    # With its dependencies, the lock as constraints only.
    _run(uv, "pip", "install", "-q", "--python", py, "--constraint", str(LOCK), str(wheel))
    return venv


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIQUIDITY_", "PYTHON"))}
    env.update(
        LIQUIDITY_DATABASE_URL=f"sqlite:///{tmp_path / 'var' / 'liquidity.db'}",
        LIQUIDITY_VAR_DIR=str(tmp_path / "var"),
        LIQUIDITY_MODEL_DIR=str(tmp_path / "var" / "models"),
        LIQUIDITY_INGEST_DIR=str(tmp_path / "var" / "incoming"),
        LIQUIDITY_N_JOBS="1",
    )
    return env


def test_the_wheel_ships_the_packages_and_their_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("liquidity_core", "liquidity_core/cli", "liquidity_core/ingest", "webapp"):
        assert f"{package}/__init__.py" in names, package
    assert any(n.startswith("plugins/") for n in names)
    assert any(n.startswith("liquidity_core/sql/") and n.endswith(".sql") for n in names)
    assert any(n.startswith("webapp/templates/") for n in names)
    assert not any(n.startswith(("tests/", "dags/", "devtools/", "bench/")) for n in names)


def test_every_lock_entry_the_wheel_needs_is_installed_and_consistent(installed):
    py = str(installed / "bin" / "python")
    proc = subprocess.run(
        [_uv(), "pip", "check", "--python", py], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The dev-only tools stay out of a runtime install.
    listed = _run(_uv(), "pip", "list", "--python", py, "--format", "json").stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    for dev_only in ("pytest", "hypothesis", "selenium", "schemathesis", "ruff", "mutmut"):
        assert dev_only not in names, dev_only
    assert "apache-airflow-providers-postgres" not in names


def test_what_compose_and_the_web_app_import_is_installed(installed, tmp_path, env):
    """The modules docker-compose.yml names (FAB auth manager, Celery executor, gunicorn)
    and every runtime import of the packages resolve in the installed environment."""
    code = """
import importlib, pkgutil
import liquidity_core, webapp
for pkg in (liquidity_core, webapp):
    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if not mod.name.endswith(".__main__"):
            importlib.import_module(mod.name)
import plugins.liquidity_plugin
from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
from airflow.providers.celery.executors.celery_executor import CeleryExecutor
import asyncpg  # Airflow's async engine on the Postgres metadata DB
import gunicorn, prometheus_client, swagger_ui_bundle, rich, alembic, redis, flask_limiter
print("ok")
"""
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**env, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    proc = _run(str(installed / "bin" / "python"), "-c", code, cwd=work, env=env, timeout=300)
    assert proc.stdout.strip().endswith("ok")


# Run by the installed interpreter: every absolute import in the installed packages' source
# and in dags/ (top level or inside a function), mapped to the distributions that provide
# it; prints those not provided by a distribution that pyproject.toml declares directly.
_UNDECLARED = r"""
import ast, importlib.metadata as md, json, re, sys
from pathlib import Path
import liquidity_core, webapp
roots = [Path(m.__file__).parent for m in (liquidity_core, webapp)] + [*map(Path, sys.argv[1:])]
own = {"liquidity_core", "webapp", "plugins", "dags"}
names = set()
for root in roots:
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
names -= own | set(sys.stdlib_module_names) | {"__future__"}
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
declared = {
    norm(re.match(r"[A-Za-z0-9._-]+", r)[0])
    for r in md.requires("crypto-liquidity") or []
    if "extra ==" not in r
}
providers = md.packages_distributions()
print(json.dumps({
    n: sorted(providers.get(n, []))
    for n in sorted(names)
    if not declared & {norm(d) for d in providers.get(n, [])}
}))
"""


def test_every_runtime_import_is_a_declared_dependency(installed, tmp_path, env):
    """Not only present: each module the packages, plugins and DAGs import (lazily too) comes
    from a distribution that pyproject.toml names itself, not one that happens to arrive
    with another (Flask-Limiter came with the FAB provider; that is not a declaration)."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = _run(
        str(installed / "bin" / "python"),
        "-c",
        _UNDECLARED,
        str(REPO / "plugins"),
        str(REPO / "dags"),
        cwd=work,
        env={**env, "AIRFLOW_HOME": str(tmp_path / "airflow")},
        timeout=300,
    )
    assert json.loads(proc.stdout) == {}


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_installed_package_runs_every_command_and_serves_the_model(installed, tmp_path, env):
    liquidity = str(installed / "bin" / "liquidity")
    work = tmp_path / "elsewhere"
    work.mkdir()

    def cli(*args: str) -> dict:
        proc = _run(liquidity, *args, "--json", cwd=work, env=env)
        return json.loads(proc.stdout)

    where = _run(
        str(installed / "bin" / "python"),
        "-c",
        "import liquidity_core; print(liquidity_core.__file__)",
        cwd=work,
        env=env,
    ).stdout.strip()
    assert not where.startswith(str(REPO)), f"imported from the checkout: {where}"

    assert cli("db", "upgrade")["applied"]
    drops = tmp_path / "drops"
    assert cli(
        "demo-data", "--out", str(drops), "--coins", "30", "--snapshots", "24", "--seed", "5"
    )["files"]
    assert cli("ingest", str(drops))["ok"]
    trained = cli("train", "--grid", "fast", "--no-candidates")
    assert trained["promoted"] is True, trained["reason"]
    assert cli("models")["current"]["version"] == trained["version"]
    with sqlite3.connect(tmp_path / "var" / "liquidity.db") as conn:
        (symbol,) = conn.execute("SELECT symbol FROM market_snapshots LIMIT 1").fetchone()
    forecast = cli("predict", "--symbol", symbol)
    assert forecast["model_version"] == trained["version"], forecast
    report = cli("report", "--out", str(tmp_path / "report"))
    assert Path(report["path"]).is_file()

    # The web app, as compose starts it: gunicorn from the installed environment.
    port = free_port()
    server = subprocess.Popen(
        [
            str(installed / "bin" / "gunicorn"),
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
            "--no-control-socket",
            "webapp:create_app()",
        ],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                status, body = _get(f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "gunicorn did not answer /healthz"
                time.sleep(0.3)
        assert (status, body) == (200, {"status": "ok"})
        status, body = _get(f"{base}/readyz")
        assert status == 200, body
        assert trained["version"] in json.dumps(body)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        server.stdout.close()
