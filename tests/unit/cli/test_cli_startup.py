"""Each ``liquidity`` command imports only what it uses.

Start-up is part of what a user waits for (``liquidity ingest FILE`` is timed as a
process). The command modules import their libraries inside the command, and the
packages' ``__init__`` files re-export lazily; these tests run real commands in fresh
interpreters with ``-X importtime`` and check which heavy libraries were loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.paths import REPO

HEAVY = ("pandas", "numpy", "sqlalchemy", "sklearn", "scipy", "matplotlib", "flask")


def imported(args: list[str], env: dict) -> set[str]:
    """Top-level packages among ``HEAVY`` that ``liquidity ARGS`` imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "liquidity_core.cli", *args],
        cwd=str(REPO),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names & set(HEAVY)


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITY_")}
    env["LIQUIDITY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env["LIQUIDITY_MODEL_DIR"] = str(tmp_path / "models")
    env["LIQUIDITY_INGEST_DIR"] = str(tmp_path / "ingest")
    return env


def test_help_imports_no_library(env):
    assert imported(["--help"], env) == set()
    assert imported(["ingest", "--help"], env) == set()


def test_db_upgrade_needs_only_sqlalchemy(env):
    assert imported(["db", "upgrade"], env) == {"sqlalchemy"}


def test_ingest_needs_no_model_or_web_library(env, tmp_path):
    subprocess.run(
        [sys.executable, "-m", "liquidity_core.cli", "db", "upgrade"],
        cwd=str(REPO),
        env=env,
        check=True,
        capture_output=True,
    )
    drop = tmp_path / "drop.csv"
    drop.write_text(
        "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\n"
        "Bitcoin,BTC,40000,0.01,0.02,0.03,1000000,800000000,2024-01-01\n"
    )
    assert imported(["ingest", str(drop)], env) == {"pandas", "numpy", "sqlalchemy"}


def test_importing_the_input_checks_does_not_load_the_ingest_pipeline():
    """The formats take their columns from the one schema (``schema.py``, SQLAlchemy Core
    tables), so SQLAlchemy's core comes with them; the pipeline, its ledger and its
    database layer do not."""
    code = (
        "import sys, liquidity_core.inputs.formats; "
        "print(*(m in sys.modules for m in ('liquidity_core.ingest.pipeline', "
        "'liquidity_core.ingest.ledger', 'liquidity_core.store.db', 'sqlalchemy.orm')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False", "False", "False"]
