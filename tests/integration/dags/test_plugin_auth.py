"""The "Model history" plugin behind Airflow's login, on a real ``airflow api-server``.

The api-server runs with the simple auth manager (two users: an admin and a viewer, with
passwords from a file, as in compose). Anonymous callers get a 401 (JSON) or a redirect
to the login page (HTML); a caller logged in as the UI is (the JWT from ``POST
/auth/token`` in the ``_token`` cookie), or with the same JWT as a bearer token, gets
200; a forged or expired token gets nothing.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from support.net import free_port
from support.webapp import database, env_of, trained_store

from devtools import airflow_env

USERS = {"operator": "admin", "watcher": "viewer"}


class ApiServer:
    """``airflow api-server`` on 127.0.0.1:<free port> with the simple auth manager."""

    def __init__(self, home: Path, store, log: Path):
        self.port = free_port()
        self.passwords = {user: secrets.token_urlsafe(12) for user in USERS}
        self.jwt_secret = secrets.token_urlsafe(64)
        pw_file = home / "passwords.json"
        pw_file.write_text(json.dumps(self.passwords))
        self.env = airflow_env(
            home,
            store,
            AIRFLOW__CORE__AUTH_MANAGER=(
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{u}:{r}" for u, r in USERS.items()),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(pw_file),
            AIRFLOW__API_AUTH__JWT_SECRET=self.jwt_secret,
            AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(32),
            AIRFLOW__API__WORKERS="1",
        )
        self.env.update(env_of(store))
        self.home = home
        self.log = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ApiServer:
        airflow = str(Path(sys.executable).parent / "airflow")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                cwd=str(self.home),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"api-server exited:\n{self.log.read_text()[-4000:]}")
            try:
                if self.request("GET", "/api/v2/version")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise AssertionError(f"api-server did not answer:\n{self.log.read_text()[-4000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def request(self, method: str, path: str, body: dict | None = None, headers=None):
        """One request, redirects not followed: (status, headers, text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            hdrs = dict(headers or {})
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def login(self, user: str) -> str:
        """What the UI's login form does: POST /auth/token; returns the JWT."""
        status, _, text = self.request(
            "POST", "/auth/token", {"username": user, "password": self.passwords[user]}
        )
        assert status == 201, text
        return json.loads(text)["access_token"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_home_template):
    root = tmp_path_factory.mktemp("plugin_auth")
    home = root / "airflow"
    shutil.copytree(airflow_home_template, home)
    with database("sqlite", root) as url:
        store = trained_store(root, url)
        with ApiServer(home, store, root / "api-server.log") as api:
            yield api


PAGE, DATA = "/liquidity/models", "/liquidity/models.json"


def test_anonymous_json_is_401(server):
    status, headers, text = server.request("GET", DATA, headers={"Accept": "application/json"})
    assert status == 401, text
    body = json.loads(text)
    assert body["error"] == "unauthenticated" and "versions" not in body
    assert headers.get("www-authenticate", headers.get("WWW-Authenticate")) == "Bearer"


def test_anonymous_page_redirects_to_login_and_back(server):
    status, headers, text = server.request("GET", PAGE, headers={"Accept": "text/html"})
    assert status == 303, text[:300]
    location = urlsplit(headers["location"])
    assert location.path == "/auth/login"
    (next_url,) = parse_qs(location.query)["next"]
    assert urlsplit(next_url).path == PAGE
    # The login page itself is there (the auth manager's UI).
    assert server.request("GET", headers["location"])[0] == 200
    assert "Model history" not in text and "champion" not in text


def test_logged_in_as_the_ui_is_sees_the_history(server):
    for user in USERS:  # the admin and the viewer both see plugin views
        token = server.login(user)
        cookie = {"Cookie": f"_token={token}"}
        status, _, page = server.request("GET", PAGE, headers=cookie)
        assert status == 200 and "Model history" in page and "<svg" in page
        status, _, data = server.request("GET", DATA, headers=cookie)
        assert status == 200 and json.loads(data)["champion"]


def test_the_same_jwt_works_as_a_bearer_token(server):
    token = server.login("operator")
    status, _, data = server.request("GET", DATA, headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(data)["versions"]


def test_forged_expired_and_wrong_logins_get_nothing(server):
    token = server.login("operator")
    claims = jwt.decode(token, options={"verify_signature": False})
    alg = jwt.get_unverified_header(token)["alg"]
    forged = jwt.encode(claims, "not-the-secret-" * 6, algorithm=alg)
    expired = jwt.encode({**claims, "exp": int(time.time()) - 60}, server.jwt_secret, algorithm=alg)
    for bad in (forged, expired, "garbage", token[:-4] + "AAAA"):
        for path in (PAGE, DATA):
            status, _, text = server.request("GET", path, headers={"Cookie": f"_token={bad}"})
            assert status in (303, 401, 403), (path, status)
            assert "champion" not in text
    status, _, _ = server.request(
        "POST", "/auth/token", {"username": "operator", "password": "wrong"}
    )
    assert status == 401


def test_the_plugin_serves_no_unauthenticated_schema_or_docs(server):
    for path in ("/liquidity/openapi.json", "/liquidity/docs", "/liquidity/redoc"):
        status, _, text = server.request("GET", path)
        assert status in (401, 404), (path, status)
        assert "model_versions" not in text
