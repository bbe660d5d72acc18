"""``pip install .`` (not editable) into a fresh virtualenv gives a working ``liquidity``.

The package is built from this checkout and installed with the runtime lock only
(``uv pip install -r requirements.txt`` then ``uv pip install --no-deps .``); every
command then runs from a temporary folder outside the checkout, so nothing can be read
from the repository by accident (the migrations and queries must come from the installed
package data).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _uv() -> str | None:
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.exists() else shutil.which("uv")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed")
    root = tmp_path_factory.mktemp("install")
    venv = root / "venv"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, text=True, timeout=900)  # noqa: E731
    run(uv, "venv", "-q", "--python", sys.executable, str(venv))
    py = str(venv / "bin" / "python")
    run(uv, "pip", "install", "-q", "--python", py, "-r", str(REPO / "requirements.txt"))
    run(uv, "pip", "install", "-q", "--python", py, "--no-deps", str(REPO))
    return venv


def test_installed_package_runs_every_command(installed, tmp_path):
    liquidity = str(installed / "bin" / "liquidity")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIQUIDITY_", "PYTHON"))}
    env.update(
        LIQUIDITY_DATABASE_URL=f"sqlite:///{tmp_path / 'var' / 'liquidity.db'}",
        LIQUIDITY_VAR_DIR=str(tmp_path / "var"),
        LIQUIDITY_MODEL_DIR=str(tmp_path / "var" / "models"),
        LIQUIDITY_INGEST_DIR=str(tmp_path / "var" / "incoming"),
        LIQUIDITY_N_JOBS="1",
    )

    def cli(*args: str) -> dict:
        proc = subprocess.run(
            [liquidity, *args, "--json"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-3000:])
        return json.loads(proc.stdout)

    where = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import liquidity_core; print(liquidity_core.__file__)",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
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
