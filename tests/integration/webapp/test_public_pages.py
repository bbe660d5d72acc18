"""Public pages and error bodies name no server internals (issue 16), over real HTTP.

Every public route is requested from a real gunicorn: the pages, the API, ``/report``,
404/405/413/415 and bad-input bodies, the OpenAPI document, and ``/readyz`` with a broken
model pointer. No answer may contain a folder of the test's tmp dirs, the repository or
home folder, the database URL, file or host, the OS user name, or a Python traceback.
"""

from __future__ import annotations

import getpass
import http.client
import json
import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.paths import REPO
from support.webapp import Gunicorn, database, trained_store
from support.webapp import http as request_http

ROW = {"coin": "Bitcoin", "symbol": "BTC", "price": 1.0, "24h_volume": 5.0, "mkt_cap": 10.0}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"public_{request.param}")
    with database(request.param, root) as url:
        settings = trained_store(root, url)
        from liquidity_core.reporting.report import build_report

        build_report(settings)
        log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
        env = {"LIQUIDITY_WEB_MODEL_CHECK_INTERVAL": "0.2"}
        with Gunicorn(settings, log, workers=1, threads=2, extra_env=env) as server:
            yield settings, server, tmp_path_factory.getbasetemp()


def forbidden_words(settings, basetemp: Path) -> list[str]:
    url = sa.engine.make_url(settings.database_url)
    words = [
        str(basetemp),
        str(basetemp.resolve()),
        str(settings.var_dir),
        str(settings.model_dir),
        str(settings.ingest_dir),
        str(REPO),
        str(Path.home()),
        settings.database_url,
        url.render_as_string(hide_password=False),
        "Traceback",
    ]
    if url.host:
        words += [f"{url.host}:{url.port or 5432}", f"@{url.host}"]
    if url.get_backend_name() == "sqlite" and url.database not in (None, ":memory:"):
        words.append(url.database)
    return [w for w in words if w]


def requests_to_send(base: str) -> list[tuple[str, str, object, dict]]:
    j = {"Content-Type": "application/json"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return [
        ("GET", "/", None, {}),
        ("POST", "/", b"coin=Bitcoin&symbol=BTC&price=1&volume_24h=5&market_cap=10", form),
        ("POST", "/", b"coin=%00&price=abc&volume_24h=-1", form),
        ("GET", "/coins?symbol=BTC", None, {}),
        ("GET", "/coins/NOSUCHCOIN", None, {}),
        ("GET", "/coins/%ED%A0%80", None, {}),
        ("GET", "/models", None, {}),
        ("GET", "/report", None, {}),
        ("GET", "/nope/../../etc/passwd", None, {}),
        ("DELETE", "/models", None, {}),
        ("GET", "/api/v1/models", None, {}),
        ("GET", "/api/v1/openapi.json", None, {}),
        ("GET", "/api/v1/coins/NOSUCHCOIN/prediction", None, {}),
        ("GET", "/api/v1/coins/%00/prediction", None, {}),
        ("GET", "/api/v1/predict", None, {}),
        ("POST", "/api/v1/predict", json.dumps(ROW).encode(), j),
        ("POST", "/api/v1/predict", b'{"coin": "\\ud800", "price": 1}', j),
        ("POST", "/api/v1/predict", b"{not json", j),
        ("POST", "/api/v1/predict", b"\xff\xfe", j),
        ("POST", "/api/v1/predict", b"coin=x", form),
        ("POST", "/api/v1/predict", json.dumps([ROW] * 6000).encode(), j),
        ("POST", "/api/v1/predict", b"[" * 100000, j),
        ("GET", "/healthz", None, {}),
        ("GET", "/readyz", None, {}),
    ]


def too_large(server) -> tuple[int, str]:
    """A POST announcing 3 MB (over the 2 MB limit) without sending it."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/v1/predict")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(3 * 1024 * 1024))
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _check(body: str, words: list[str], user: str, what: str) -> None:
    for word in words:
        assert word not in body, f"{what} shows {word!r}: {body[:2000]}"
    if len(user) >= 3:
        assert not re.search(rf"(?<![\w-]){re.escape(user)}(?![\w-])", body), (
            f"{what} shows the OS user name {user!r}: {body[:2000]}"
        )


def test_no_public_answer_names_server_internals(served):
    settings, server, basetemp = served
    words = forbidden_words(settings, basetemp)
    user = getpass.getuser()
    statuses = {}
    for method, path, body, headers in requests_to_send(server.url):
        status, got, _ = request_http(method, server.url + path, body, headers=headers, timeout=30)
        text = got if isinstance(got, str) else json.dumps(got, ensure_ascii=False)
        _check(text, words, user, f"{method} {path} ({status})")
        assert status < 500 or path == "/readyz", (method, path, status, text[:500])
        statuses[(method, path[:40])] = status
    status, text = too_large(server)
    _check(text, words, user, "a too-large body")
    statuses[("POST", "too large")] = status
    assert statuses[("GET", "/report")] == 200
    assert statuses[("DELETE", "/models")] == 405
    assert 413 in statuses.values() and 404 in statuses.values()

    # A broken pointer: /readyz and the 503 bodies give the reason, not the folders.
    pointer = settings.model_dir / "current.json"
    saved = pointer.read_bytes()
    pointer.write_text(
        json.dumps(
            {
                "version": "v-missing",
                "sha256": "0" * 64,
                "artifact_path": "versions/v-missing/model.joblib",
            }
        )
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, got, _ = request_http("GET", server.url + "/readyz")
            if got.get("reason"):
                break
            time.sleep(0.2)
        assert got.get("reason"), got
        _check(json.dumps(got), words, user, "/readyz with a broken pointer")
        pointer.unlink()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, got, _ = request_http("GET", server.url + "/readyz")
            if "published" in (got.get("reason") or ""):
                break
            time.sleep(0.2)
        _check(json.dumps(got), words, user, "/readyz without a pointer")
        for method, path, body, headers in requests_to_send(server.url):
            status, got, _ = request_http(method, server.url + path, body, headers=headers)
            text = got if isinstance(got, str) else json.dumps(got, ensure_ascii=False)
            _check(text, words, user, f"{method} {path} ({status}) with no model")
    finally:
        pointer.write_bytes(saved)
