"""``liquidity db upgrade | current | history``: the schema's revisions on the command line."""

import json
import os
import subprocess
import sys

import pytest
from support.paths import REPO

from liquidity_core.store import migrate


@pytest.fixture
def run(tmp_path):
    """``run(*args)``: ``liquidity ARGS`` on a fresh SQLite file; (exit status, stdout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITY_")}
    env["LIQUIDITY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'c.db'}"
    env["LIQUIDITY_MODEL_DIR"] = str(tmp_path / "models")
    env["LIQUIDITY_INGEST_DIR"] = str(tmp_path / "ingest")

    def run(*args: str) -> tuple[int, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "liquidity_core.cli", *args],
            cwd=str(REPO),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert not proc.stderr.strip() or proc.returncode, proc.stderr[-2000:]
        return proc.returncode, proc.stdout

    return run


def test_upgrade_then_current_reports_the_head(run):
    revisions = [h["revision"] for h in reversed(migrate.history())]
    code, out = run("db", "current", "--json")
    assert code == 0
    assert json.loads(out) == {
        "revision": None,
        "head": migrate.head(),
        "is_head": False,
        "stamped": False,
    }
    code, out = run("db", "upgrade", "--json")
    assert code == 0
    assert json.loads(out) == {"applied": revisions, "revision": migrate.head()}
    code, out = run("db", "upgrade")
    assert (code, out) == (0, "schema is up to date\n")
    code, out = run("db", "current", "--json")
    assert code == 0 and json.loads(out)["is_head"] is True
    code, out = run("db", "current")
    assert (code, out) == (0, f"{migrate.head()} (head)\n")


def test_history_lists_the_revisions_newest_first(run):
    code, out = run("db", "history", "--json")
    assert code == 0
    revisions = json.loads(out)["revisions"]
    assert [r["revision"] for r in revisions] == [h["revision"] for h in migrate.history()]
    assert revisions[0]["is_head"] and revisions[-1]["down_revision"] is None
    code, out = run("db", "history")
    lines = out.splitlines()
    assert lines[0].startswith(f"{migrate.head()} (head): ")
    assert lines[-1].startswith("001_ingest: Ingestion")
