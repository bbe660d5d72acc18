"""Text fields with control characters or lone surrogates: a 4xx or a rejected row naming
the field, on every input path (JSON API, records, CSV), never a crash (issue 16)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from liquidity_core import ingest
from liquidity_core.inputs.formats import coin_slug
from liquidity_core.inputs.records import normalize_records

ROW = {"coin": "Bitcoin", "symbol": "BTC", "price": 1, "24h_volume": 5, "mkt_cap": 10}
BAD = ["\ud800", "a\udfffb", "nul\x00", "bell\x07", "del\x7f"]


def test_coin_slug_of_a_lone_surrogate_does_not_raise():
    assert coin_slug("\ud800").startswith("coin-")


@pytest.mark.parametrize("field", ["coin", "symbol"])
@pytest.mark.parametrize("value", BAD)
def test_records_name_the_text_field(field, value):
    frame, errors = normalize_records([{**ROW, field: value}], require_identity=False)
    assert [e["field"] for e in errors] == [field]
    assert "control character or lone surrogate" in errors[0]["problem"]


def test_good_unicode_text_is_kept():
    frame, errors = normalize_records(
        [{**ROW, "coin": "Café\u0301 ١٢٣ \uff11", "symbol": "ÉTH"}], require_identity=False
    )
    assert errors == []
    assert frame["coin_name"].iloc[0] == "Café\u0301 ١٢٣ \uff11"


def test_api_answers_422_naming_the_field(tmp_path):
    from support.webapp import trained_store

    from webapp import create_app

    settings = trained_store(tmp_path, f"sqlite:///{tmp_path / 'l.db'}")
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    body = '{"coin": "\\ud800", "price": 1, "24h_volume": 5, "mkt_cap": 10}'
    r = client.post("/api/v1/predict", data=body, content_type="application/json")
    assert r.status_code == 422
    assert r.get_json()["errors"] == [
        {"field": "coin", "problem": "'\\ud800' has a control character or lone surrogate"}
    ]
    batch = json.dumps([ROW, {**ROW, "symbol": "\udbff"}])
    r = client.post("/api/v1/predict", data=batch, content_type="application/json")
    assert r.status_code == 422
    assert [(e["index"], e["field"]) for e in r.get_json()["errors"]] == [(1, "symbol")]


def test_csv_row_with_a_control_character_is_rejected_naming_the_field(settings, engine):
    path = settings.ingest_dir / "ctl.csv"
    path.write_bytes(
        b"coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\n"
        b"Bitcoin,BTC,1,0.1,0.1,0.1,5,10,2024-01-01\n"
        b"Bad\x01Coin,BAD,1,0.1,0.1,0.1,5,10,2024-01-01\n"
    )
    (result,) = ingest.ingest_paths([path], settings=settings)
    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT coin_name FROM market_snapshots")).scalars().all()
        problems = conn.execute(sa.text("SELECT * FROM rejected_rows")).mappings().all()
    assert names == ["Bitcoin"]
    assert "coin" in str(dict(problems[0])) and "control character" in str(dict(problems[0]))
