"""The web app through Flask's test client, with a real trained model on both backends.

Every endpoint, and every kind of bad input: each gets a 4xx JSON body naming the field
and the problem, and leaves the stored data (database tables, model folder) unchanged.
"""

from __future__ import annotations

import json
import math

import pytest
from support.rows import ROW
from support.webapp import (
    copy_store,
    database,
    model_dir_state,
    settings_for,
    table_counts,
    trained_store,
)

from liquidity_core.store import db

CMC_ROW = {
    "Name": "Ethereum",
    "Symbol": "ETH",
    "Price": "$2,744.41",
    "% 1h": "2.4",
    "% 24h": "3.4",
    "% 7d": "6.5",
    "Volume (24h)": "$19,748,695,312",
    "Market Cap": "$327,104,429,349",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    """Settings of a database with an ingested demo panel and one trained champion."""
    root = tmp_path_factory.mktemp(f"webapp_{request.param}")
    with database(request.param, root) as url:
        yield trained_store(root, url)


@pytest.fixture(scope="module")
def app(store, make_app):
    return make_app(store, MODEL_CHECK_INTERVAL=0.0)


@pytest.fixture
def client(app, store):
    """A client; the test fails if the request changed any stored data."""
    before = (table_counts(store), model_dir_state(store))
    yield app.test_client()
    assert (table_counts(store), model_dir_state(store)) == before


@pytest.fixture(scope="module")
def champion(store):
    from liquidity_core.registry.champion import get_champion

    return get_champion(db.get_engine(store.database_url))


@pytest.fixture(scope="module")
def symbol(store):
    import sqlalchemy as sa

    with db.transaction(db.get_engine(store.database_url)) as conn:
        return conn.execute(sa.text("SELECT MIN(symbol) FROM market_snapshots")).scalar_one()


def _assert_prediction(body: dict, version: str) -> None:
    assert body["model_version"] == version
    assert body["liquidity_level"] in {"Low", "Medium", "High"}
    t = body["predicted_turnover"]
    assert isinstance(t, float) and math.isfinite(t) and t > 0
    assert body["interval"]["low"] <= t <= body["interval"]["high"]


def _assert_error(resp, status: int, *fields: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert set(body) >= {"error", "message", "errors"}
    assert body["message"]
    named = {e["field"] for e in body["errors"]}
    for field in fields:
        assert field in named, body
    for e in body["errors"]:
        assert e["problem"]
    return body


# --- probes and documents -------------------------------------------------------------------


def test_healthz(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_readyz_names_the_served_model(client, champion):
    resp = client.get("/readyz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ready" and body["ready"] is True
    assert body["model_version"] == champion["version"] and body["reason"] is None


def test_openapi_describes_every_route(client, app):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.0")  # the version the vendored Swagger UI renders
    documented = {p.replace("{symbol}", "<symbol>") for p in doc["paths"]}
    api_rules = {
        r.rule
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/api/") or r.rule in ("/healthz", "/readyz", "/metrics")
    }
    assert api_rules == documented
    limits = doc["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]
    assert limits["application/json"]["schema"]["oneOf"][1]["maxItems"] == 5000


def test_security_headers(client):
    for path in ("/", "/api/v1/models", "/healthz"):
        h = client.get(path).headers
        assert "default-src 'none'" in h["Content-Security-Policy"]
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "no-referrer"
    assert client.get("/api/v1/models").headers["Cache-Control"] == "no-store"


# --- prediction API -------------------------------------------------------------------------


def test_predict_one_object(client, champion):
    resp = client.post("/api/v1/predict", json=ROW)
    assert resp.status_code == 200
    _assert_prediction(resp.get_json(), champion["version"])


def test_predict_list_of_mixed_formats(client, champion):
    no_identity = {k: v for k, v in ROW.items() if k not in ("coin", "symbol")}
    resp = client.post("/api/v1/predict", json=[ROW, CMC_ROW, no_identity])
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["model_version"] == champion["version"]
    assert len(body["predictions"]) == 3
    for p in body["predictions"]:
        _assert_prediction(p, champion["version"])
    # The same snapshot in either format gives the same forecast.
    first, _, third = body["predictions"]
    assert first["predicted_turnover"] == pytest.approx(third["predicted_turnover"])


def test_predict_header_case_and_spaces_do_not_matter(client):
    shouted = {k.upper().replace("_", " "): v for k, v in ROW.items()}
    a = client.post("/api/v1/predict", json=ROW).get_json()
    b = client.post("/api/v1/predict", json=shouted).get_json()
    assert a["predicted_turnover"] == pytest.approx(b["predicted_turnover"])


def test_predict_batch_at_the_limit(client):
    resp = client.post("/api/v1/predict", json=[ROW] * 1000)
    assert resp.status_code == 200
    assert len(resp.get_json()["predictions"]) == 1000


def test_coin_prediction(client, champion, symbol):
    resp = client.get(f"/api/v1/coins/{symbol}/prediction")
    assert resp.status_code == 200
    _assert_prediction(resp.get_json(), champion["version"])


def test_coin_prediction_unknown_coin_is_404(client):
    resp = client.get("/api/v1/coins/NOSUCHCOIN/prediction")
    body = _assert_error(resp, 404)
    assert "NOSUCHCOIN" in body["message"]


def test_models_history(client, champion):
    resp = client.get("/api/v1/models")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["champion"] == champion["version"]
    (only,) = body["versions"]
    assert only["version"] == champion["version"] and only["status"] == "champion"
    assert isinstance(only["holdout_r2"], float)
    json.dumps(body, allow_nan=False)  # strict JSON: no NaN or Infinity


# --- bad input ------------------------------------------------------------------------------

BAD_JSON = [
    # (id, raw body, status, fields named)
    ("malformed", b'{"price": ', 400, ["body"]),
    ("trailing-garbage", b'{"price": 1} x', 400, ["body"]),
    ("not-utf8", b'{"price": "\xff"}', 400, ["body"]),
    ("deep-nesting", b"[" * 100_000 + b"]" * 100_000, 400, ["body"]),
    ("huge-integer", b'{"price": ' + b"9" * 5000 + b"}", 400, ["body"]),
    ("scalar", b"42", 422, ["body"]),
    ("string", b'"hello"', 422, ["body"]),
    ("null", b"null", 422, ["body"]),
    ("empty-list", b"[]", 422, ["body"]),
]


@pytest.mark.parametrize(
    ("body", "status", "fields"), [b[1:] for b in BAD_JSON], ids=[b[0] for b in BAD_JSON]
)
def test_predict_rejects_bad_json(client, body, status, fields):
    resp = client.post("/api/v1/predict", data=body, content_type="application/json")
    _assert_error(resp, status, *fields)


def _without(key: str) -> dict:
    return {k: v for k, v in ROW.items() if k != key}


BAD_ROWS = [
    # (id, row, field named)
    ("price-string", {**ROW, "price": "abc"}, "price"),
    ("price-bool", {**ROW, "price": True}, "price"),
    ("price-object", {**ROW, "price": {"usd": 1}}, "price"),
    ("price-list", {**ROW, "price": [1, 2]}, "price"),
    ("price-negative", {**ROW, "price": -1.5}, "price"),
    ("volume-negative", {**ROW, "24h_volume": -10}, "24h_volume"),
    ("mkt-cap-negative-string", {**ROW, "mkt_cap": "-5"}, "mkt_cap"),
    ("price-infinite-string", {**ROW, "price": "Infinity"}, "price"),
    ("change-below-minus-100", {**ROW, "24h": -1.5}, "24h"),
    ("missing-price", _without("price"), "price"),
    ("missing-volume", _without("24h_volume"), "24h_volume"),
    ("missing-mkt-cap", _without("mkt_cap"), "mkt_cap"),
    ("change-too-large", {**ROW, "7d": 1.7e308}, "7d"),
    ("cap-too-small", {**ROW, "mkt_cap": 1e-300, "24h_volume": 1e15}, "mkt_cap"),
    ("volume-too-large-string", {**ROW, "24h_volume": "1e300"}, "24h_volume"),
    ("cmc-bad-percent", {**CMC_ROW, "% 24h": "lots"}, "% 24h"),
    ("cmc-missing-cap", {k: v for k, v in CMC_ROW.items() if k != "Market Cap"}, "Market Cap"),
]


@pytest.mark.parametrize(("row", "field"), [b[1:] for b in BAD_ROWS], ids=[b[0] for b in BAD_ROWS])
def test_predict_rejects_bad_fields(client, row, field):
    resp = client.post("/api/v1/predict", json=row)
    body = _assert_error(resp, 422, field)
    assert all("index" not in e for e in body["errors"])  # one object: no row numbers


@pytest.mark.parametrize(
    ("literal", "field"),
    [
        (b"NaN", "price"),
        (b"Infinity", "price"),
        (b"-Infinity", "24h_volume"),
        (b"1e999", "mkt_cap"),
    ],
)
def test_predict_rejects_non_finite_numbers(client, literal, field):
    body = json.dumps({**ROW, field: "__X__"}).encode().replace(b'"__X__"', literal)
    resp = client.post("/api/v1/predict", data=body, content_type="application/json")
    _assert_error(resp, 422, field)


def test_batch_errors_name_row_and_field(client):
    rows = [ROW, {**ROW, "price": -1}, "not an object", {**ROW, "mkt_cap": None, "1h": True}]
    resp = client.post("/api/v1/predict", json=rows)
    body = _assert_error(resp, 422)
    found = {(e.get("index"), e["field"]) for e in body["errors"]}
    assert (2, "body") in found and (3, "1h") in found
    # Shape problems are reported first; once they are fixed the values are checked.
    resp = client.post("/api/v1/predict", json=[ROW, {**ROW, "price": -1}, _without("mkt_cap")])
    body = _assert_error(resp, 422, "price", "mkt_cap")
    found = {(e["index"], e["field"]) for e in body["errors"]}
    assert found == {(1, "price"), (2, "mkt_cap")}


def test_predict_wrong_content_type(client):
    resp = client.post("/api/v1/predict", data=json.dumps(ROW), content_type="text/plain")
    _assert_error(resp, 415, "body")
    resp = client.post("/api/v1/predict", data={"price": "1"})  # a form post
    _assert_error(resp, 415, "body")


def test_predict_wrong_method(client):
    resp = client.get("/api/v1/predict")
    _assert_error(resp, 405)
    assert "POST" in resp.headers["Allow"]


def test_unknown_api_path_is_json_404(client):
    _assert_error(client.get("/api/v1/nothing"), 404)


@pytest.fixture
def small_limits_client(store, make_app):
    return make_app(store, MAX_BATCH_ROWS=10, MAX_CONTENT_LENGTH=4096).test_client()


def test_too_many_rows(small_limits_client):
    resp = small_limits_client.post("/api/v1/predict", json=[{"price": 1}] * 11)
    body = _assert_error(resp, 413, "body")
    assert "11 rows" in body["errors"][0]["problem"]


def test_body_too_large(small_limits_client):
    resp = small_limits_client.post("/api/v1/predict", json=[ROW] * 40)
    body = _assert_error(resp, 413, "body")
    assert "4096" in body["message"]


def test_limits_from_environment(store, monkeypatch, make_app):
    monkeypatch.setenv("LIQUIDITY_WEB_MAX_BATCH_ROWS", "3")
    client = make_app(store).test_client()
    _assert_error(client.post("/api/v1/predict", json=[ROW] * 4), 413, "body")
    assert client.post("/api/v1/predict", json=[ROW] * 3).status_code == 200


# --- pages ----------------------------------------------------------------------------------


def test_index_form(client):
    resp = client.get("/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    for name in ("price", "1h", "24h", "7d", "24h_volume", "mkt_cap", "coin", "symbol"):
        assert f'name="{name}"' in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_index_form_prediction(client, champion):
    form = {k: str(v) for k, v in ROW.items()}
    resp = client.post("/", data=form)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'id="result"' in html and champion["version"] in html
    assert any(f"{level} liquidity" in html for level in ("Low", "Medium", "High"))


def test_index_form_field_errors(client):
    form = {**{k: str(v) for k, v in ROW.items()}, "price": "-3", "mkt_cap": "abc"}
    resp = client.post("/", data=form)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'id="e-price"' in html and 'id="e-mkt_cap"' in html
    assert 'id="result"' not in html
    assert 'value="-3"' in html  # the user's input is kept


def test_index_form_out_of_range(client):
    form = {**{k: str(v) for k, v in ROW.items()}, "mkt_cap": "1e-300", "7d": "1e300"}
    resp = client.post("/", data=form)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'id="e-mkt_cap"' in html and 'id="e-7d"' in html


def test_models_page(client, champion):
    resp = client.get("/models")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "<svg" in html and 'class="champion-marker"' in html
    assert champion["version"] in html and "style=" not in html.split("<svg", 1)[1]


def test_coin_page(client, symbol):
    resp = client.get(f"/coins/{symbol}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'id="coin-prediction"' in html and "<table" in html


def test_coin_lookup_redirects(client, symbol):
    resp = client.get(f"/coins?symbol={symbol}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/coins/{symbol}")


def test_unknown_coin_page_is_404_html(client):
    resp = client.get("/coins/NOSUCHCOIN")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert "NOSUCHCOIN" in resp.get_data(as_text=True)


def test_report_page(client, store):
    assert client.get("/report").status_code == 404


def test_report_page_once_written(tmp_path, make_app):
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'r.db'}")
    report = settings.var_dir / "report" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<!doctype html><title>Report</title><h1>Liquidity report</h1>")
    client = make_app(settings, PRELOAD_MODEL=False).test_client()
    resp = client.get("/report")
    assert resp.status_code == 200 and b"Liquidity report" in resp.data
    assert "script-src" not in resp.headers["Content-Security-Policy"]  # no scripts run


# --- without a model, and with a broken one -------------------------------------------------


def test_no_model_yet(settings, engine, make_app):
    client = make_app(settings).test_client()  # a migrated, empty database on each backend
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert "no model has been published" in resp.get_json()["reason"]
    _assert_error(client.post("/api/v1/predict", json=ROW), 503)
    assert client.get("/").status_code == 200
    resp = client.post("/", data={k: str(v) for k, v in ROW.items()})
    assert resp.status_code == 503 and "No model" in resp.get_data(as_text=True)
    assert client.get("/api/v1/models").get_json() == {"champion": None, "versions": []}
    assert "No model has been trained yet" in client.get("/models").get_data(as_text=True)


def test_database_without_schema_is_503(tmp_path, make_app):
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'bare.db'}")
    client = make_app(settings).test_client()
    body = _assert_error(client.get("/api/v1/models"), 503)
    assert body["error"].startswith("database")
    assert client.get("/models").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_corrupt_artifact_keeps_serving_old_model(store, tmp_path, champion, make_app):
    """A copy of the store whose pointer is switched to a corrupted artifact."""
    if not store.database_url.startswith("sqlite"):
        pytest.skip("copies the SQLite store")
    from liquidity_core.registry.champion import read_current_pointer, write_current_pointer

    copy = copy_store(store, tmp_path)
    client = make_app(copy, MODEL_CHECK_INTERVAL=0.0).test_client()
    assert client.get("/readyz").status_code == 200

    pointer = read_current_pointer(copy.model_dir)
    artifact = copy.model_dir / pointer["artifact_path"]
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    # Re-point (a new pointer file) at the same version: the holder must reload and fail.
    write_current_pointer(
        copy.model_dir,
        version=pointer["version"],
        sha256="0" * 64,
        artifact_path=pointer["artifact_path"],
    )
    resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert "sha256" in body["reason"] and champion["version"] in body["reason"]
    assert body["model_version"] == champion["version"]  # still serving the old one
    resp = client.post("/api/v1/predict", json=ROW)
    assert resp.status_code == 200 and resp.get_json()["model_version"] == champion["version"]
