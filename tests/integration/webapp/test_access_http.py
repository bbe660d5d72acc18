"""Rate limits and API keys over real HTTP (gunicorn on 127.0.0.1).

- A burst over ``LIQUIDITY_API_RATE_LIMIT`` gets 429s in the API's error shape with
  ``Retry-After``; the health probes and pages answer all along; after ``Retry-After``
  seconds the API answers again.
- With Redis storage the limit is one budget shared by both workers.
- With ``LIQUIDITY_API_KEYS``: a POST without a key is a 401, with an unknown key a 403,
  with an issued key a 200; revoking it (``liquidity keys revoke``) takes effect
  without a restart; GETs stay open; no key ever reaches the server's log.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import jsonschema
import pytest
import redis
from support.rows import ROW
from support.webapp import Gunicorn, database, http, table_counts, trained_store

from liquidity_core.access import hash_key
from liquidity_core.errors import ConfigError
from webapp import DEFAULTS
from webapp.openapi import openapi_document

REDIS_URL = "redis://127.0.0.1:6379/7"
DOCUMENT = openapi_document(DEFAULTS)


def _documented(path: str, method: str, status: int, body: dict) -> None:
    """The answer is in the OpenAPI document, and its body matches the Error schema."""
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(status) in responses, (path, status)
    jsonschema.validate(body, DOCUMENT["components"]["schemas"]["Error"])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("access")
    with database("sqlite", root) as url:
        yield trained_store(root, url)


def _burst(url: str, n: int) -> list[tuple[int, dict | str, dict]]:
    return [http("GET", url + "/api/v1/models") for _ in range(n)]


def _assert_429(status, body, headers) -> int:
    assert status == 429
    assert body["error"] == "too_many_requests" and body["errors"] == []
    assert "retry after" in body["message"]
    retry = int(headers["Retry-After"])
    assert 1 <= retry <= 5
    return retry


def test_burst_sees_429_then_recovers(store, tmp_path):
    env = {"LIQUIDITY_API_RATE_LIMIT": "10 per 3 seconds"}
    with Gunicorn(store, tmp_path / "g.log", workers=1, threads=4, extra_env=env) as server:
        answers = _burst(server.url, 25)
        statuses = [a[0] for a in answers]
        assert statuses.count(200) == 10 and statuses.count(429) == 15, statuses
        assert statuses[:10] == [200] * 10  # the budget is used first, then refused
        retry = _assert_429(*answers[-1])
        _documented("/api/v1/models", "get", 429, answers[-1][1])
        assert (
            "Retry-After"
            in DOCUMENT["paths"]["/api/v1/models"]["get"]["responses"]["429"]["headers"]
        )
        # Limited: every /api/v1 route, POSTs included. Never limited: probes and pages.
        status, body, headers = http("POST", server.url + "/api/v1/predict", ROW)
        _assert_429(status, body, headers)
        assert http("GET", server.url + "/api/v1/openapi.json")[0] == 429
        for path in ("/healthz", "/readyz", "/", "/models") * 5:
            assert http("GET", server.url + path)[0] == 200, path
        time.sleep(retry + 0.2)
        status, body, _ = http("POST", server.url + "/api/v1/predict", ROW)
        assert status == 200 and body["model_version"]
        assert [a[0] for a in _burst(server.url, 5)] == [200] * 5


def test_redis_storage_shares_one_budget_between_workers(store, tmp_path):
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    limit = f"12 per {20 + uuid.uuid4().int % 40} seconds"  # a key of its own in Redis
    env = {"LIQUIDITY_API_RATE_LIMIT": limit, "LIQUIDITY_RATE_LIMIT_STORAGE": REDIS_URL}
    with Gunicorn(store, tmp_path / "g.log", workers=2, threads=2, extra_env=env) as server:
        statuses = [a[0] for a in _burst(server.url, 30)]
    # Each worker alone would let 12 through (24 in all): one shared count lets 12.
    assert statuses.count(200) == 12 and statuses.count(429) == 18, statuses
    assert any(b"LIMITER" in key for key in client.keys("*liquidity*"))
    client.close()


def _apikeys(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liquidity_core.cli", "keys", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_api_keys_issue_use_and_revoke(store, tmp_path):
    keys = tmp_path / "keys.txt"
    issued = _apikeys("issue", "--file", str(keys), "--name", "alice")
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    assert len(key) >= 40 and key not in keys.read_text()
    assert hash_key(key) in keys.read_text() and oct(keys.stat().st_mode)[-3:] == "600"
    other = _apikeys("issue", "--file", str(keys), "--name", "bob").stdout.strip()
    before = table_counts(store)

    log = tmp_path / "g.log"
    env = {"LIQUIDITY_API_KEYS": str(keys)}
    with Gunicorn(store, log, workers=2, threads=2, extra_env=env) as server:
        url = server.url + "/api/v1/predict"
        status, body, headers = http("POST", url, ROW)
        assert status == 401 and body["errors"][0]["field"] == "Authorization"
        assert headers["WWW-Authenticate"].startswith("Bearer")
        _documented("/api/v1/predict", "post", 401, body)
        for header in (f"Basic {key}", "Bearer ", key):
            assert http("POST", url, ROW, headers={"Authorization": header})[0] == 401
        for wrong in ("not-a-key", key + "x", key[:-1], key.upper(), "\u00e9" * 40):
            status, body, _ = http(
                "POST",
                url,
                ROW,
                headers={"Authorization": f"Bearer {wrong}".encode().decode("latin-1")},
            )
            assert status == 403 and body["error"] == "forbidden"
            _documented("/api/v1/predict", "post", 403, body)
            assert wrong not in body["message"]
        for good in (key, other):
            status, body, _ = http("POST", url, ROW, headers={"Authorization": f"Bearer {good}"})
            assert status == 200 and body["model_version"]
        # Reads stay open.
        assert http("GET", server.url + "/api/v1/models")[0] == 200
        assert http("GET", server.url + "/api/v1/coins/BTC/prediction")[0] in (200, 404)

        revoked = _apikeys("revoke", "--file", str(keys), "--name", "alice")
        assert revoked.returncode == 0 and "revoked 1" in revoked.stdout
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answers = {
                http("POST", url, ROW, headers={"Authorization": f"Bearer {key}"})[0]
                for _ in range(4)  # both workers
            }
            if answers == {403}:
                break
            time.sleep(0.3)
        assert answers == {403}
        status, _, _ = http("POST", url, ROW, headers={"Authorization": f"Bearer {other}"})
        assert status == 200
    assert key not in log.read_text() and other not in log.read_text()
    assert table_counts(store) == before
    listed = _apikeys("list", "--file", str(keys))
    assert "bob" in listed.stdout and "alice" not in listed.stdout and other not in listed.stdout


def test_bad_access_settings_stop_the_app_with_the_variable_named(make_app, store, tmp_path):
    with pytest.raises(ConfigError, match="LIQUIDITY_API_RATE_LIMIT"):
        make_app(store.with_overrides(api_rate_limit="lots"), PRELOAD_MODEL=False)
    raw_key = "sk-this-is-a-key-not-a-hash"
    with pytest.raises(ConfigError) as caught:
        make_app(store.with_overrides(api_keys=f"{raw_key},{hash_key('x')}"), PRELOAD_MODEL=False)
    assert raw_key not in str(caught.value) and "sha256" in str(caught.value)
    with pytest.raises(ConfigError, match="LIQUIDITY_API_KEYS"):
        make_app(store.with_overrides(api_keys=str(tmp_path / "missing.txt")), PRELOAD_MODEL=False)
    keys = tmp_path / "pasted.txt"
    keys.write_text(f"{hash_key('a')} alice\n{raw_key} bob\n")
    with pytest.raises(ConfigError, match="line 2") as caught:
        make_app(store.with_overrides(api_keys=str(keys)), PRELOAD_MODEL=False)
    assert raw_key not in str(caught.value)


def test_keys_file_that_breaks_later_fails_closed(make_app, store, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{hash_key('good')} alice\n")
    app = make_app(store.with_overrides(api_keys=str(keys)), PRELOAD_MODEL=False)
    ring = app.extensions["liquidity_api_keys"]
    ring._check_interval = 0.0
    assert ring.knows("good") and not ring.knows("bad")
    keys.write_text("garbage that is not a hash\n")
    assert not ring.knows("good")
    keys.write_text(f"{hash_key('good')} alice\n")
    assert ring.knows("good")


def test_limit_keeps_counting_in_memory_when_redis_is_down(make_app, store):
    from support.net import free_port

    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = store.with_overrides(api_rate_limit="3/minute", rate_limit_storage=down)
    client = make_app(settings, PRELOAD_MODEL=False).test_client()
    statuses = [client.get("/api/v1/openapi.json").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert client.get("/healthz").status_code == 200
