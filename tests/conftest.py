"""Shared fixtures.

Storage tests run twice: against a SQLite file in ``tmp_path`` and against PostgreSQL
(``TEST_DATABASE_URL``, e.g. ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``) in a
schema of their own that is dropped afterwards. Without ``TEST_DATABASE_URL`` the
PostgreSQL half is skipped; ``.ci/run`` always sets it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import airflow_env, scratch_schema
from liquidity_core import db
from liquidity_core.settings import load_settings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PG_URL = os.environ.get("TEST_DATABASE_URL")


@contextmanager
def fresh_database(kind: str, root: Path, *, prefix: str = "t") -> Iterator[str]:
    """A fresh, empty database URL of ``kind`` ("sqlite" or "postgresql"), dropped after.

    SQLite: a file under ``root``. PostgreSQL: a schema of its own on ``TEST_DATABASE_URL``
    (skips the test when that is not set).
    """
    if kind == "sqlite":
        yield f"sqlite:///{root / 'liquidity.db'}"
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    with scratch_schema(PG_URL, prefix) as (url, _schema):
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database URL on each backend."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def settings(database_url, tmp_path):
    """Settings on a fresh database with folders under ``tmp_path``."""
    env = {
        "LIQUIDITY_DATABASE_URL": database_url,
        "LIQUIDITY_VAR_DIR": str(tmp_path / "var"),
        "LIQUIDITY_INGEST_DIR": str(tmp_path / "ingest"),
        "LIQUIDITY_MODEL_DIR": str(tmp_path / "models"),
        "LIQUIDITY_FILE_SETTLE_SECONDS": "0",
        "LIQUIDITY_N_JOBS": "1",
    }
    s = load_settings(env)
    s.ingest_dir.mkdir(parents=True)
    s.model_dir.mkdir(parents=True)
    return s


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

REPO = Path(__file__).resolve().parents[1]


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
        cmd = [sys.executable, str(REPO / "tests" / "dag_runner.py"), dag_id]
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
        outcome = json.loads(marker[-1][len("DAG_RESULT "):])
        return DagRunResult(state=outcome["state"], tasks=outcome["tasks"], log=log)

    return run
