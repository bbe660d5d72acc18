"""Shared fixtures.

Storage tests run twice: against a SQLite file in ``tmp_path`` and against PostgreSQL
(``TEST_DATABASE_URL``, e.g. ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``) in a
schema of their own that is dropped afterwards. Without ``TEST_DATABASE_URL`` the
PostgreSQL half is skipped; ``.ci/run`` always sets it.

Tests are grouped by what they test: ``unit/<package>/`` (one package of
``liquidity_core``, in process), ``integration/`` (the DAGs, the web app over HTTP, faults,
fuzzing, the deployment files) and ``e2e/`` (the installed product, the local stack, the
distributed topology, the browser, load, the bench). Each test is marked with its group, so
``pytest -m unit`` runs the quick ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.database import PG_URL, fresh_database
from support.env import make_settings
from support.paths import REPO, SHARED_DATA

from devtools import airflow_env
from liquidity_core.store import db

__all__ = ["PG_URL", "REPO", "SHARED_DATA", "airflow_env", "fresh_database"]


@pytest.fixture(autouse=True)
def _data_version_asked_on_every_call():
    """A web app made by a test trusts a data version it found for a while
    (:func:`liquidity_core.serving.recent.set_check_interval`, for the whole process); the
    next test starts again from the default, which asks on every call."""
    yield
    from liquidity_core.serving import recent

    recent.set_check_interval(0.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database URL on each backend."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def settings(database_url, tmp_path):
    """Settings on a fresh database with folders under ``tmp_path``."""
    return make_settings(tmp_path, database_url, LIQUIDITY_N_JOBS=1)


@pytest.fixture
def engine(settings):
    """A migrated engine for ``settings``."""
    eng = db.get_engine(settings.database_url)
    db.upgrade(eng)
    return eng


@pytest.fixture
def sample_files():
    """The real CoinGecko samples in ``../shared/data``."""
    files = sorted(SHARED_DATA.glob("*.csv"))
    assert files, f"no sample CSVs found in {SHARED_DATA}"
    return files


# --- Airflow: run DAGs for real -------------------------------------------------------------


@dataclass
class DagRunResult:
    """The outcome of one ``dag.test()`` run."""

    state: str
    tasks: dict
    log: str


@pytest.fixture(scope="session")
def airflow_home_template(tmp_path_factory):
    """An AIRFLOW_HOME whose metadata DB was migrated once (``airflow db migrate``)."""
    home = tmp_path_factory.mktemp("airflow_template")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=airflow_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home


@pytest.fixture
def airflow_home(airflow_home_template, tmp_path):
    """A per-test copy of the migrated AIRFLOW_HOME."""
    home = tmp_path / "airflow"
    shutil.copytree(airflow_home_template, home)
    return home


@pytest.fixture
def run_dag(airflow_home):
    """Run a DAG of ``dags/`` with ``dag.test()`` against ``settings``; returns DagRunResult."""

    def run(dag_id: str, settings, conf: dict | None = None, timeout: float = 600) -> DagRunResult:
        cmd = [sys.executable, str(REPO / "tests" / "support" / "dag_runner.py"), dag_id]
        if conf is not None:
            cmd.append(json.dumps(conf))
        proc = subprocess.run(
            cmd,
            env=airflow_env(airflow_home, settings),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(airflow_home),
        )
        log = proc.stdout + proc.stderr
        marker = [ln for ln in proc.stdout.splitlines() if ln.startswith("DAG_RESULT ")]
        if not marker:
            raise AssertionError(
                f"dag {dag_id} did not finish (exit {proc.returncode}):\n{log[-6000:]}"
            )
        outcome = json.loads(marker[-1][len("DAG_RESULT ") :])
        return DagRunResult(state=outcome["state"], tasks=outcome["tasks"], log=log)

    return run


# --- the web app, as in the Flask tutorial --------------------------------------------------


@pytest.fixture(scope="session")
def make_app():
    """A factory: ``make_app(settings, **config)`` is the web app on ``settings``, testing.

    For the tests that need other settings or config than the ``app`` fixture's.
    """
    from webapp import create_app

    def make(settings, **config):
        return create_app({"SETTINGS": settings, "TESTING": True, **config})

    return make


@pytest.fixture
def app(make_app, settings, engine):
    """The web app on a fresh, migrated database (no model yet)."""
    return make_app(settings)


@pytest.fixture
def client(app):
    """A test client of ``app``."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner of ``app``."""
    return app.test_cli_runner()


_GROUPS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config, items):
    """Mark each test with its folder's group (``unit``, ``integration`` or ``e2e``)."""
    tests = Path(__file__).resolve().parent
    for item in items:
        group = Path(item.fspath).resolve().relative_to(tests).parts[0]
        if group in _GROUPS:
            item.add_marker(getattr(pytest.mark, group))
