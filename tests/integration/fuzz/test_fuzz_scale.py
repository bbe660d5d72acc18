"""Fuzzing at scale: every input surface, seeded, with a budget (tests/support/fuzz.py).

``make fuzz`` runs this file with ``FUZZ_BUDGET=10000`` generated inputs per target
(``FUZZ_SEED`` picks them; the same seed gives the same inputs). A normal test run uses a
small budget, so CI fuzzes a little every time. Every target expects 0 crashes, 0 5xx
and nothing stored changed by a rejected input; the figures are printed (``-s``).
"""

from __future__ import annotations

import os

import pytest
from support.env import make_settings
from support.fuzz import fuzz_csv, fuzz_http, fuzz_web, report
from support.webapp import Gunicorn, database, trained_store

from liquidity_core.ingest import ingest_paths
from liquidity_core.store import db

BUDGET = int(os.environ.get("FUZZ_BUDGET") or 150)
SEED = int(os.environ.get("FUZZ_SEED") or 16)
FIGURES: list = []


@pytest.fixture(scope="module", autouse=True)
def _print_figures():
    yield
    if FIGURES:
        print("\n" + report(FIGURES, seed=SEED, budget=BUDGET))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_web")
    with database("sqlite", root) as url:
        yield trained_store(root, url)


def _assert_clean(outcomes) -> None:
    FIGURES.extend(outcomes)
    failed = [o for o in outcomes if o.failure_count]
    assert not failed, report(outcomes, seed=SEED, budget=BUDGET)


def test_csv_files_through_ingest(tmp_path):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'fuzz.db'}")
    _assert_clean([fuzz_csv(settings, seed=SEED, budget=BUDGET)])


def test_api_bodies_forms_and_paths_in_process(store, make_app):
    _assert_clean(fuzz_web(make_app(store), store, seed=SEED, budget=BUDGET))


def test_api_bodies_and_paths_over_http(store, tmp_path):
    with Gunicorn(store, tmp_path / "gunicorn.log", workers=1, threads=2) as server:
        outcome = fuzz_http(server.url, store, seed=SEED, budget=max(50, BUDGET // 10))
    _assert_clean([outcome])


# Found by `make fuzz` (seed 16, budget 10,000): each was a 500 before its fix.
FOUND = [
    # Year -1: parsed with microseconds, then overflowed the model's nanoseconds.
    ({"date": "-01-01"}, "date", "is not a date"),
    ({"date": "0000-01-01"}, "date", "is not a date"),
    # 200 digits skipped the range check (it stopped at 64 characters): 1e200 overflowed.
    ({"7d": "9" * 200}, "7d", "out of range"),
]
ROW = {"price": 3.4, "1h": -0.17, "24h": -0.1, "7d": 0.16, "24h_volume": 2.5e10, "mkt_cap": 6.8e9}


@pytest.mark.parametrize(("change", "field", "problem"), FOUND)
def test_inputs_found_by_fuzzing_are_refused_by_name(store, make_app, change, field, problem):
    client = make_app(store).test_client()
    row = {**ROW, **change}
    resp = client.post("/api/v1/predict", json=row)
    assert resp.status_code == 422, resp.get_data()[:300]
    (error,) = resp.get_json()["errors"]
    assert error["field"] == field and problem in error["problem"]
    form = client.post("/", data={k: str(v) for k, v in row.items() if k != "date"})
    assert form.status_code in (200, 422)


def test_a_csv_row_dated_year_zero_is_rejected_not_stored(tmp_path):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'years.db'}")
    db.upgrade(db.get_engine(settings.database_url))
    path = settings.ingest_dir / "years.csv"
    path.write_text(
        "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\n"
        "Bitcoin,BTC,1,0,0,0,5,10,2024-01-01\n"
        "Bitcoin,BTC,1,0,0,0,5,10,0000-01-01\n"
    )
    (result,) = ingest_paths([path], settings=settings)
    assert result.status == "loaded" and (result.rows_loaded, result.rows_rejected) == (1, 1)
