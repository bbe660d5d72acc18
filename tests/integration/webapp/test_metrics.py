"""``GET /metrics`` (Prometheus).

- After a few requests the exposition has the request counts and latency histograms by
  URL rule (never the raw path) and status, the refusals, the served model version and
  its age, and the store's data version.
- Access: without ``LIQUIDITY_API_KEYS`` only this host (loopback, not forwarded) may read
  it; with keys a bearer key is needed (401 without, 403 unknown), from anywhere.
- Under gunicorn (2 workers, ``-c python:webapp.gunicorn_conf``) a scrape shows the counts
  of both workers added up, whichever worker answers.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.webapp import Gunicorn, database, http, trained_store

from liquidity_core.registry.champion import read_current_pointer
from liquidity_core.store import db
from webapp import create_app
from webapp.apikeys import hash_key

KEY = "metrics-test-key"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    with database("sqlite", root) as url:
        yield trained_store(root, url)


def samples(text: str) -> dict[tuple, float]:
    """``{(sample name, sorted label items): value}`` of an exposition text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series(name: str, **labels) -> tuple:
    return (name, tuple(sorted((k, str(v)) for k, v in labels.items())))


def scrape(client, **kw) -> dict[tuple, float]:
    response = client.get("/metrics", **kw)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.content_type.startswith("text/plain")
    return samples(response.get_data(as_text=True))


def test_series_after_a_few_requests(store):
    app = create_app({"SETTINGS": store.with_overrides(api_rate_limit="3 per 1 minute")})
    client = app.test_client()
    before = scrape(client)
    for path in ("/healthz", "/healthz", "/coins/NOSUCHCOIN", "/no/such/page"):
        client.get(path)
    statuses = [client.get("/api/v1/models").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    after = scrape(client)

    def delta(key):
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = "liquidity_http_requests_total"
    assert delta(series(requests, route="/healthz", method="GET", status=200)) == 2
    assert delta(series(requests, route="/api/v1/models", method="GET", status=200)) == 3
    assert delta(series(requests, route="/api/v1/models", method="GET", status=429)) == 2
    assert delta(series(requests, route="<unmatched>", method="GET", status=404)) == 1
    coin = [k for k in after if k[0] == requests and ("route", "/coins/<symbol>") in k[1]]
    assert coin, "the coin page is counted under its URL rule"
    assert not any("NOSUCHCOIN" in str(k) or "/no/such" in str(k) for k in after)
    duration = "liquidity_http_request_duration_seconds"
    healthz = {"route": "/healthz", "method": "GET", "status": 200}
    assert delta(series(duration + "_count", **healthz)) == 2
    assert delta(series(duration + "_sum", **healthz)) > 0
    assert after[series(duration + "_bucket", le="+Inf", **healthz)] >= 2
    assert delta(series("liquidity_rate_limit_refusals_total")) == 2

    version = read_current_pointer(store.model_dir)["version"]
    assert after[series("liquidity_model_info", version=version)] == 1
    assert after[series("liquidity_model_ready")] == 1
    assert 0 <= after[series("liquidity_model_age_seconds")] < 24 * 3600
    files, newest = db.probe_row(store.database_url, _data_version_query())
    assert files > 0
    assert after[series("liquidity_data_ingest_files")] == files
    assert after[series("liquidity_data_info", ingest_files=files, newest_snapshot=newest)] == 1
    assert after[series("liquidity_data_newest_snapshot_timestamp_seconds")] > 1.5e9
    assert after[series("liquidity_database_up")] == 1


def _data_version_query():
    from liquidity_core.store.snapshots import DATA_VERSION

    return DATA_VERSION


def test_without_keys_only_this_host_reads_metrics(store):
    client = create_app({"SETTINGS": store, "PRELOAD_MODEL": False}).test_client()
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"  # the API's error shape
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        response = client.get("/metrics", headers={header: "203.0.113.9"})
        assert response.status_code == 403, header  # a proxy on this host forwarded it


def test_with_keys_metrics_need_a_bearer_key(store):
    settings = store.with_overrides(api_keys=f"{hash_key(KEY)},{hash_key('other')}")
    client = create_app({"SETTINGS": settings, "PRELOAD_MODEL": False}).test_client()
    response = client.get("/metrics")
    assert response.status_code == 401 and "Bearer" in response.headers["WWW-Authenticate"]
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": f"Basic {KEY}"}).status_code == 401
    good = {"Authorization": f"Bearer {KEY}"}
    assert client.get("/metrics", headers=good).status_code == 200
    far = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/metrics", headers=good, environ_base=far).status_code == 200
    assert KEY not in client.get("/metrics", headers=good).get_data(as_text=True)


def test_metrics_over_http_add_up_every_worker(store, tmp_path):
    prom = tmp_path / "prometheus"
    prom.mkdir()
    (prom / "counter_1.db").write_bytes(b"stale counts of an earlier server")
    env = {"LIQUIDITY_API_KEYS": hash_key(KEY), "PROMETHEUS_MULTIPROC_DIR": str(prom)}
    args = ["-c", "python:webapp.gunicorn_conf"]
    with Gunicorn(
        store, tmp_path / "g.log", workers=2, threads=2, extra_env=env, extra_args=args
    ) as server:
        assert http("GET", server.url + "/metrics")[0] == 401
        bad = {"Authorization": "Bearer nope"}
        assert http("GET", server.url + "/metrics", headers=bad)[0] == 403
        good = {"Authorization": f"Bearer {KEY}"}
        version = read_current_pointer(store.model_dir)["version"]
        healthz = {"route": "/healthz", "method": "GET", "status": 200}
        probes = samples(http("GET", server.url + "/metrics", headers=good)[1])
        assert probes[series("liquidity_http_requests_total", **healthz)] >= 1  # startup probes
        # Counted on /readyz, which the startup probes never call: a probe that timed out
        # while a worker was starting may still be answered (and counted) later.
        readyz = {"route": "/readyz", "method": "GET", "status": 200}
        assert series("liquidity_http_requests_total", **readyz) not in probes
        for _ in range(30):
            assert http("GET", server.url + "/readyz")[0] == 200
        for _ in range(6):  # each scrape may be answered by either worker: same totals
            status, text, headers = http("GET", server.url + "/metrics", headers=good)
            assert status == 200 and headers["Content-Type"].startswith("text/plain"), text
            got = samples(text)
            assert got[series("liquidity_http_requests_total", **readyz)] == 30
            count = series("liquidity_http_request_duration_seconds_count", **readyz)
            assert got[count] == 30
            assert got[series("liquidity_rate_limit_refusals_total")] == 0
            assert got[series("liquidity_model_info", version=version)] == 1
            assert got[series("liquidity_data_ingest_files")] > 0
        pids = {p.stem.rsplit("_", 1)[1] for p in prom.glob("counter_*.db")}
        assert len(pids) == 2, sorted(prom.iterdir())  # both workers count into the folder
        assert "1" not in pids  # the stale file was removed at start
        assert "is not set: /metrics shows" not in server.log()
