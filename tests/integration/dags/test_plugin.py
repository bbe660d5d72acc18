"""The Airflow plugin: Airflow loads it, and its FastAPI view answers with the history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.webapp import database, env_of, land_and_forecast, trained_store

from devtools import airflow_env


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    with database("sqlite", root) as url:
        settings = trained_store(root, url)
        land_and_forecast(settings, more=2)  # realized skill to show (issue 14)
        yield settings


def test_airflow_lists_the_plugin(tmp_path):
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "plugins", "-o", "json"],
        env=airflow_env(tmp_path / "airflow_home"),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plugins = json.loads(proc.stdout[proc.stdout.index("[") :])
    (ours,) = [p for p in plugins if p["name"] == "liquidity"]
    assert ours["source"].endswith("liquidity_plugin.py")
    (app,) = ours["fastapi_apps"]
    assert app["url_prefix"] == "/liquidity"
    (view,) = ours["external_views"]
    assert view["name"] == "Model history" and view["destination"] == "nav"
    assert view["href"] == "liquidity/models" and view["url_route"]


def _through_airflow(store, home, paths: list[str]) -> list[dict]:
    """GET ``paths`` from Airflow's own API server app in a fresh process, logged in as the
    UI is: a JWT from the auth manager in the ``_token`` cookie. ``home`` is a migrated
    AIRFLOW_HOME (the auth manager checks tokens against the metadata database);
    test_plugin_auth.py checks the refusals against a real ``airflow api-server``."""
    script = f"""
import json
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app, get_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
app = create_app()
token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
client = TestClient(app, raise_server_exceptions=False, cookies={{"_token": token}})
out = []
for path in {paths!r}:
    r = client.get(path)
    out.append({{"status": r.status_code, "text": r.text}})
print("RESULT " + json.dumps(out))
"""
    env = airflow_env(home, store)
    env.update(env_of(store))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=str(home),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_plugin_view_answers_with_history(store, airflow_home):
    """Airflow's API server mounts the plugin app under /liquidity."""
    page, data = _through_airflow(
        store, airflow_home, ["/liquidity/models", "/liquidity/models.json"]
    )
    assert data["status"] == 200, data["text"][:500]
    body = json.loads(data["text"])
    (version,) = body["versions"]
    assert body["champion"] == version["version"] and version["status"] == "champion"
    assert page["status"] == 200
    assert "Model history" in page["text"] and version["version"] in page["text"]
    assert "<svg" in page["text"] and "champion-marker" in page["text"]
    assert "Realized skill" in page["text"] and isinstance(version["realized_skill"], float)
    assert f"{version['realized_skill']:.3f}" in page["text"]


def test_plugin_view_without_schema_is_503(tmp_path, airflow_home):
    from support.webapp import settings_for

    empty = settings_for(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    page, data = _through_airflow(
        empty, airflow_home, ["/liquidity/models", "/liquidity/models.json"]
    )
    assert page["status"] == 503 and "model_versions" in page["text"], page["text"][:2000]
    assert "liquidity db upgrade" in page["text"]
    assert data["status"] == 503 and json.loads(data["text"])["error"] == "unavailable"
