"""Coin identity across renames (issue #13) on SQLite and PostgreSQL.

Constructed renames in every input format, files in shuffled order, the ambiguous cases
(a shared ticker, a market-cap jump, a gap), chains, and every reader following one coin:
the training panel, predictions, the coin page.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from liquidity_core.features.build import HISTORY_ROWS, build_features
from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import generate_panel
from liquidity_core.store import identity
from liquidity_core.store.snapshots import load_snapshots
from tests.support.market_files import WRITERS, cg_file, cmc_file, ohlcv_file

DAYS = [f"2024-01-{d:02d}" for d in range(1, 11)]


def series(name, symbol, days, cap=1e9, step=1.01, vol=1e7):
    return [(name, symbol, d, cap * step**i, vol * (1 + 0.1 * (i % 3))) for i, d in enumerate(days)]


def one_file_per_day(folder: Path, rows, writer=cg_file) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    by_day: dict[str, list] = {}
    for r in rows:
        by_day.setdefault(r[2], []).append(r)
    return [writer(folder / f"drop_{d}.csv", rs) for d, rs in sorted(by_day.items())]


def ingest(settings, paths) -> None:
    results = ingest_paths(list(paths), settings=settings)
    assert all(r.status == "loaded" for r in results), [r.as_dict() for r in results]


def mapping(engine) -> dict:
    return identity.aliases(engine)


def table(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                identity.coin_aliases.c.alias_id,
                identity.coin_aliases.c.coin_id,
                identity.coin_aliases.c.previous_id,
            ).order_by("alias_id")
        ).all()
    return [tuple(r) for r in rows]


def background(days):
    return series("Bitcoin", "BTC", days, cap=5e11) + series("Ether", "ETH", days, cap=2e11)


# --- the rule, per format and order ---------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_rename_links_in_every_format(settings, engine, tmp_path, fmt):
    old = series("Tether", "USDT", DAYS[:5], cap=8e10)
    new = series("Tether USDt", "usdt", DAYS[5:], cap=8e10 * 1.01**5)
    paths = one_file_per_day(tmp_path / "in", background(DAYS) + old + new, WRITERS[fmt])
    ingest(settings, paths)
    assert mapping(engine) == {"tether-usdt": "tether"}
    panel = load_snapshots(engine)
    tether = panel[panel["coin_id"] == "tether"]
    assert len(tether) == len(DAYS)
    assert set(tether["coin_name"]) == {"Tether", "Tether USDt"}
    assert "tether-usdt" not in set(panel["coin_id"])


def test_shuffled_arrival_gives_the_same_mapping(settings, engine, tmp_path):
    rows = (
        background(DAYS)
        + series("Binance Coin", "BNB", DAYS[:4], cap=3e10)
        + series("BNB", "BNB", DAYS[4:7], cap=3.1e10)
        + series("USD Coin", "USDC", DAYS[:6], cap=2e10)
        + series("USDC", "USDC", DAYS[6:], cap=2.05e10)
    )
    paths = one_file_per_day(tmp_path / "in", rows)
    random.Random(3).shuffle(paths)
    paths.sort(key=lambda p: p.name < "drop_2024-01-07")  # post-rename files first
    for p in paths:  # one file at a time, each a separate load and recompute
        ingest(settings, [p])
    assert table(engine) == [
        ("bnb", "binance-coin", "binance-coin"),
        ("usdc", "usd-coin", "usd-coin"),
    ]


def test_files_split_by_name_in_either_order(settings, engine, tmp_path):
    """The pre- and post-rename rows in two files of different formats."""
    old = cmc_file(tmp_path / "old.csv", series("Tether", "USDT", DAYS[:5], cap=8e10))
    new = ohlcv_file(tmp_path / "new.csv", series("Tether USDt", "USDT", DAYS[5:], cap=8e10))
    ingest(settings, [new])
    assert mapping(engine) == {}
    ingest(settings, [old])
    assert mapping(engine) == {"tether-usdt": "tether"}


def test_chain_resolves_to_the_root(settings, engine, tmp_path):
    rows = (
        background(DAYS)
        + series("Alpha", "ABC", DAYS[:3])
        + series("Beta", "ABC", DAYS[3:6])
        + series("Gamma", "ABC", DAYS[6:])
    )
    ingest(settings, one_file_per_day(tmp_path / "in", rows))
    assert table(engine) == [("beta", "alpha", "alpha"), ("gamma", "alpha", "beta")]
    panel = load_snapshots(engine)
    assert (panel["coin_id"] == "alpha").sum() == len(DAYS)


# --- ambiguous: a new coin ------------------------------------------------------------------


def test_shared_ticker_is_no_link(settings, engine, tmp_path):
    """Another coin holds the ticker across the rename: which one was renamed is unclear."""
    rows = (
        background(DAYS)
        + series("Foo", "ABC", DAYS[:5])
        + series("Foonew", "ABC", DAYS[5:])
        + series("Other ABC", "ABC", DAYS, cap=1.1e9)
    )
    ingest(settings, one_file_per_day(tmp_path / "in", rows))
    assert mapping(engine) == {}


def test_two_candidates_are_no_link(settings, engine, tmp_path):
    rows = (
        background(DAYS)
        + series("Foo", "ABC", DAYS[:5])
        + series("Bar", "ABC", DAYS[:5])
        + series("Baz", "ABC", DAYS[5:])
    )
    ingest(settings, one_file_per_day(tmp_path / "in", rows))
    assert mapping(engine) == {}


@pytest.mark.parametrize("jump", [identity.MCAP_FACTOR * 1.2, 1 / (identity.MCAP_FACTOR * 1.2)])
def test_market_cap_jump_is_no_link(settings, engine, tmp_path, jump):
    old = series("Foo", "ABC", DAYS[:5], step=1.0)
    new = series("Foo Two", "ABC", DAYS[5:], cap=1e9 * jump, step=1.0)
    ingest(settings, one_file_per_day(tmp_path / "in", background(DAYS) + old + new))
    assert mapping(engine) == {}


def test_within_factor_links(settings, engine, tmp_path):
    old = series("Foo", "ABC", DAYS[:5], step=1.0)
    new = series("Foo Two", "ABC", DAYS[5:], cap=1e9 * identity.MCAP_FACTOR * 0.9, step=1.0)
    ingest(settings, one_file_per_day(tmp_path / "in", background(DAYS) + old + new))
    assert mapping(engine) == {"foo-two": "foo"}


def test_gap_of_one_snapshot_is_no_link(settings, engine, tmp_path):
    rows = background(DAYS) + series("Foo", "ABC", DAYS[:4]) + series("Foo Two", "ABC", DAYS[5:])
    ingest(settings, one_file_per_day(tmp_path / "in", rows))
    assert mapping(engine) == {}


def test_a_late_file_can_undo_a_link(settings, engine, tmp_path):
    """The mapping follows the stored data: a file that reveals a shared ticker unlinks."""
    rows = background(DAYS) + series("Foo", "ABC", DAYS[:5]) + series("Foo Two", "ABC", DAYS[5:])
    ingest(settings, one_file_per_day(tmp_path / "in", rows))
    assert mapping(engine) == {"foo-two": "foo"}
    ingest(settings, [cg_file(tmp_path / "late.csv", series("Other", "ABC", DAYS[4:6]))])
    assert mapping(engine) == {}


def test_two_concurrent_loads_either_side_of_a_rename_record_it(settings, engine, tmp_path):
    """Each load recomputes the aliases in its own transaction; on PostgreSQL the second
    must see the first's committed rows, or neither records the rename."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: loads never overlap there")
    old = cg_file(tmp_path / "old.csv", background(DAYS[:5]) + series("Foo", "ABC", DAYS[:5]))
    new = cg_file(tmp_path / "new.csv", background(DAYS[5:]) + series("Foo Two", "ABC", DAYS[5:]))
    results: list = []
    # The loads waiting for the gate, directly or behind one that does.
    waiting = sa.text(
        "SELECT count(*) FROM pg_stat_activity a WHERE :gate = ANY(pg_blocking_pids(a.pid)) "
        "OR EXISTS (SELECT 1 FROM pg_stat_activity b WHERE :gate = ANY(pg_blocking_pids(b.pid))"
        " AND b.pid = ANY(pg_blocking_pids(a.pid)))"
    )
    with engine.connect() as gate:
        # Hold the aliases table: both loads store their rows and reach the recompute
        # before either commits, the worst case for a recompute that ignores the other.
        gate.exec_driver_sql("LOCK TABLE coin_aliases IN ACCESS EXCLUSIVE MODE")
        me = {"gate": gate.exec_driver_sql("SELECT pg_backend_pid()").scalar()}

        def blocked() -> int:
            # pg_stat_activity is read once per transaction unless its snapshot is cleared
            gate.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            return gate.execute(waiting, me).scalar()

        runs = [
            threading.Thread(
                target=lambda f=f: results.extend(ingest_paths([f], settings=settings))
            )
            for f in (old, new)
        ]
        for run in runs:
            run.start()
        deadline = time.monotonic() + 60
        while blocked() < 2 and all(r.is_alive() for r in runs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert blocked() == 2
        gate.commit()
    for run in runs:
        run.join(timeout=60)
    assert sorted(r.status for r in results) == ["loaded", "loaded"]
    assert mapping(engine) == {"foo-two": "foo"}


def test_the_decision_time_is_utc_whatever_the_local_zone(settings, engine, tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    try:
        rows = (
            background(DAYS) + series("Foo", "ABC", DAYS[:5]) + series("Foo Two", "ABC", DAYS[5:])
        )
        ingest(settings, [cg_file(tmp_path / "all.csv", rows)])
    finally:
        monkeypatch.undo()
        time.tzset()
    with engine.connect() as conn:
        (decided,) = conn.execute(sa.select(identity.coin_aliases.c.decided_at)).scalars()
    age = pd.Timestamp.now(tz="UTC") - pd.Timestamp(decided)
    assert pd.Timedelta(0) <= age < pd.Timedelta(minutes=5)


def test_decide_is_order_free():
    spans = pd.DataFrame(
        {
            "coin_id": ["a", "b"],
            "first_ts": ["2024-01-01T00:00:00+00:00", "2024-01-03T00:00:00+00:00"],
            "last_ts": ["2024-01-02T00:00:00+00:00", "2024-01-04T00:00:00+00:00"],
            "first_symbol": ["X", "X"],
            "first_cap": [1.0, 2.0],
            "last_symbol": ["X", "X"],
            "last_cap": [1.0, 2.0],
        }
    )
    times = [f"2024-01-0{d}T00:00:00+00:00" for d in (4, 2, 1, 3)]
    shared = pd.DataFrame({"snapshot_ts": [], "symbol": []})
    a = identity.decide(spans, times, shared)
    b = identity.decide(spans.iloc[::-1], times[::-1], shared)
    assert a.equals(b) and list(a["alias_id"]) == ["b"]


# --- readers follow one coin ----------------------------------------------------------------


def renamed_demo(tmp_path: Path, *, coins=30, snapshots=24, seed=5, at=20):
    """Demo drops where the largest coin is renamed at snapshot ``at``."""
    panel = generate_panel(coins=coins, snapshots=snapshots, seed=seed, start="2024-01-01")
    last = panel[panel["date"] == panel["date"].max()]
    big = last.sort_values("mkt_cap").iloc[-1]
    dates = sorted(panel["date"].unique())
    later = (panel["coin"] == big["coin"]) & (panel["date"] >= dates[at])
    panel.loc[later, "coin"] = big["coin"] + " Renamed"
    out = tmp_path / "drops"
    out.mkdir()
    for date, rows in panel.groupby("date"):
        rows.to_csv(out / f"coin_gecko_{date}.csv", index=False)
    from liquidity_core.inputs.formats import coin_slug

    return out, big["symbol"], coin_slug(big["coin"]), coin_slug(big["coin"] + " Renamed")


def test_training_panel_is_continuous_across_the_rename(settings, engine, tmp_path):
    drops, symbol, old_id, new_id = renamed_demo(tmp_path, snapshots=12, at=8)
    ingest(settings, [drops])
    assert mapping(engine) == {new_id: old_id}
    panel = load_snapshots(engine)
    coin = panel[panel["symbol"] == symbol]
    assert set(coin["coin_id"]) == {old_id} and len(coin) == 12
    fs = build_features(panel)
    meta = fs.meta.reset_index(drop=True)
    mine = fs.X.reset_index(drop=True)[(meta["coin_id"] == old_id).to_numpy()]
    assert len(mine) == 12
    # At the first snapshot under the new name the features still see the old rows.
    at = mine.iloc[8]
    if "snapshots_seen" in mine:
        assert list(mine["snapshots_seen"]) == sorted(mine["snapshots_seen"])
        assert at["snapshots_seen"] >= 8
    if "log_turnover_diff" in mine:
        assert np.isfinite(at["log_turnover_diff"])


@pytest.fixture
def renamed_champion(settings, engine, tmp_path):
    from liquidity_core.training.cycle import run_training_cycle

    drops, symbol, old_id, new_id = renamed_demo(tmp_path)
    ingest(settings, [drops])
    result = run_training_cycle(settings, grid="fast", candidates=False)
    assert result["promoted"], result["reason"]
    return symbol, old_id, new_id


def test_prediction_for_the_new_name_uses_the_whole_history(settings, renamed_champion):
    from liquidity_core.serving.predict import predict_for_symbol, predict_liquidity

    symbol, old_id, new_id = renamed_champion
    whole = min(24, HISTORY_ROWS)
    assert whole > 4  # more than the 4 snapshots under the new name
    for key in (symbol, symbol.lower(), new_id, old_id):
        got = predict_for_symbol(key, settings=settings)
        assert got["coin_id"] == old_id and got["history_snapshots"] == whole
        assert got["coin_name"].endswith("Renamed")
    panel = load_snapshots(settings_engine(settings))
    newest = panel[panel["coin_id"] == old_id].iloc[-1]
    row = {
        "coin": newest["coin_name"],
        "symbol": "",
        "price": 1.0,
        "24h_volume": 1e6,
        "mkt_cap": float(newest["market_cap"]),
        "date": "2024-02-01",
    }
    assert predict_liquidity([row], settings=settings)[0]["history_snapshots"] == whole


def settings_engine(settings):
    from liquidity_core.store import db

    return db.get_engine(settings.database_url)


def test_coin_page_shows_both_names(settings, renamed_champion):
    from webapp import create_app

    symbol, old_id, _new_id = renamed_champion
    app = create_app({"TESTING": True, "SETTINGS": settings})
    client = app.test_client()
    page = client.get(f"/coins/{symbol}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    panel = load_snapshots(settings_engine(settings))
    names = set(panel.loc[panel["coin_id"] == old_id, "coin_name"])
    assert len(names) == 2 and all(n in html for n in names)
    api = client.get(f"/api/v1/coins/{symbol}/prediction")
    assert api.status_code == 200 and api.get_json()["coin_id"] == old_id
