"""The closed loop over the web app: stored forecasts served, monitoring as JSON, pages."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from support.webapp import database, land_and_forecast, trained_store

from liquidity_core.monitoring.accuracy import monitor
from liquidity_core.store import db
from webapp import DEFAULTS
from webapp.openapi import openapi_document


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop_web")
    with database("sqlite", root) as url:
        settings = trained_store(root, url)
        land_and_forecast(settings, more=3)
        yield settings


@pytest.fixture
def client(store, make_app):
    return make_app(store).test_client()


def _symbol(store) -> str:
    engine = db.get_engine(store.database_url)
    with db.transaction(engine) as conn:
        return conn.execute(sa.text("SELECT MIN(symbol) FROM market_snapshots")).scalar_one()


def test_prediction_api_serves_the_stored_forecast(store, client):
    body = client.get(f"/api/v1/coins/{_symbol(store)}/prediction").get_json()
    assert body["source"] == "stored"
    assert {"predicted_turnover", "interval", "model_version", "as_of"} <= set(body)


def test_monitoring_api_is_the_monitor_report(store, client):
    response = client.get("/api/v1/monitoring")
    assert response.status_code == 200
    body = response.get_json()
    (version,) = body["versions"]
    expected = monitor(store)["versions"][0]
    keys = ("realized_r2", "persistence_r2", "skill", "mae", "coverage", "mean_width")
    assert [version[k] for k in keys] == pytest.approx([expected[k] for k in keys])
    assert version["version"] == expected["version"]
    assert version["snapshots"] == 3 and version["rows"] == 3 * 12
    for key in ("realized_r2", "persistence_r2", "skill", "coverage", "nominal_coverage"):
        assert isinstance(version[key], float), key
    assert body["alerts"] == [] or all("champion" in a for a in body["alerts"])
    assert "/api/v1/monitoring" in openapi_document(DEFAULTS)["paths"]


def test_pages_show_the_loop(store, client):
    page = client.get("/models").get_data(as_text=True)
    assert 'id="realized-svg"' in page and "Realized skill" in page and 'id="drift' in page
    # Each feature's drift threshold is shown beside its PSI.
    drift = monitor(store)["drift"]
    assert drift["calibrated"] and '<th class="num">Threshold</th>' in page
    assert all(f"{f['threshold']:.3f}" in page for f in drift["features"])
    # ... and charted: a bar per feature, each with its threshold marked.
    assert 'id="drift-chart"' in page and 'id="drift-svg"' in page
    assert page.count('class="psi-bar') == len(drift["features"])
    assert page.count('class="threshold"') == len(drift["features"])
    coin = client.get(f"/coins/{_symbol(store)}").get_data(as_text=True)
    assert 'id="coin-forecast-svg"' in coin and coin.count('class="forecast"') == 4
    assert "stored forecast" in coin
