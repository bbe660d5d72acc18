"""The Airflow plugin: Airflow loads it, and its FastAPI view answers with the history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from webapp_support import database, env_of, trained_store

from conftest import REPO, airflow_env


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    with database("sqlite", root) as url:
        yield trained_store(root, url)


def test_airflow_lists_the_plugin(tmp_path):
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "plugins", "-o", "json"],
        env=airflow_env(tmp_path / "airflow_home"),
        capture_output=True, text=True, timeout=180, cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plugins = json.loads(proc.stdout[proc.stdout.index("["):])
    (ours,) = [p for p in plugins if p["name"] == "liquidity"]
    assert ours["source"].endswith("liquidity_plugin.py")
    (app,) = ours["fastapi_apps"]
    assert app["url_prefix"] == "/liquidity"
    (view,) = ours["external_views"]
    assert view["name"] == "Model history" and view["destination"] == "nav"
    assert view["href"] == "liquidity/models" and view["url_route"]


def test_plugin_view_answers_with_history(store, tmp_path):
    """Import the plugin in a fresh Airflow process and call its FastAPI app."""
    script = f"""
import json, sys
sys.path.insert(0, {str(REPO / 'plugins')!r})
from fastapi.testclient import TestClient
import liquidity_plugin
client = TestClient(liquidity_plugin.app)
page = client.get("/models")
data = client.get("/models.json")
print("RESULT " + json.dumps({{"page_status": page.status_code, "page": page.text,
                              "json_status": data.status_code, "json": data.json()}}))
"""
    env = airflow_env(tmp_path / "airflow_home", store)
    env.update(env_of(store))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=180, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["json_status"] == 200
    (version,) = result["json"]["versions"]
    assert result["json"]["champion"] == version["version"]
    assert result["page_status"] == 200
    page = result["page"]
    assert "Model history" in page and version["version"] in page
    assert "<svg" in page and "champion-marker" in page
