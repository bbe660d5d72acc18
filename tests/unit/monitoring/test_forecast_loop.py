"""The closed loop on real storage: train on early snapshots, land later ones one at a time
through the real path, and check what was stored, joined, measured and alerted.

The monitoring numbers are checked against a hand computation from the raw tables
(``forecasts`` and ``market_snapshots``, read with plain SQL), not against the module's
own helpers.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from liquidity_core.cli import main
from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import write_demo_drops
from liquidity_core.monitoring import accuracy as monitoring
from liquidity_core.monitoring import forecasts
from liquidity_core.registry import champion as registry
from liquidity_core.serving.predict import predict_for_symbol
from liquidity_core.store import db
from liquidity_core.store.snapshots import SNAPSHOT_TIMES, to_utc
from liquidity_core.training.cycle import run_training_cycle

COINS = 12
EARLY = 24  # snapshots the model is trained on
LATER = 6  # snapshots landed one at a time afterwards


@pytest.fixture
def drops(tmp_path):
    return write_demo_drops(
        tmp_path / "drops", coins=COINS, snapshots=EARLY + LATER, seed=11, start="2024-03-01"
    )


@pytest.fixture
def trained(settings, engine, drops, monkeypatch):
    for key, value in settings.as_env().items():  # for the CLI
        monkeypatch.setenv(key, value)
    ingest_paths(drops[:EARLY], settings=settings)
    result = run_training_cycle(settings, grid="fast", candidates=False)
    assert result["promoted"], result
    forecasts.forecast_new_snapshots(settings)  # the forecast DAG, on the champion_model Asset
    return result["version"]


def _table(engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _hand_outcomes(engine) -> pd.DataFrame:
    """Each stored forecast with the coin's log turnover now and at the next stored time."""
    f = _table(engine, "SELECT * FROM forecasts")
    s = _table(engine, "SELECT coin_id, snapshot_ts, volume_24h, market_cap FROM market_snapshots")
    for frame in (f, s):
        frame["snapshot_ts"] = pd.to_datetime(frame["snapshot_ts"], utc=True, format="ISO8601")
    s["lt"] = np.log(s["volume_24h"].astype(float) / s["market_cap"].astype(float))
    times = sorted(s["snapshot_ts"].unique())
    nxt = {t: times[i + 1] for i, t in enumerate(times[:-1])}
    f["target_ts"] = f["snapshot_ts"].map(nxt)  # the next stored snapshot time
    f = f.dropna(subset=["target_ts"])
    realized = s.rename(columns={"snapshot_ts": "target_ts", "lt": "actual"})
    out = f.merge(realized[["coin_id", "target_ts", "actual"]], on=["coin_id", "target_ts"])
    return out


def test_loop_stores_each_forecast_once_joins_outcomes_and_measures_them(
    settings, engine, drops, trained, capsys
):
    # The promotion made the new champion score the newest snapshot at once.
    first = _table(engine, "SELECT COUNT(*) AS n, COUNT(DISTINCT snapshot_ts) AS t FROM forecasts")
    assert (first.n[0], first.t[0]) == (COINS, 1)
    champion = registry.get_champion(engine)
    for path in drops[EARLY:]:
        ingest_paths([path], settings=settings)
        assert main(["forecast", "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert (printed["model_version"], printed["snapshots"], printed["rows"]) == (
            trained,
            1,
            COINS,
        )
        again = forecasts.forecast_new_snapshots(settings)
        assert (again["snapshots"], again["rows"]) == (0, 0), "a re-run stores nothing"
    stored = _table(engine, "SELECT model_version, coin_id, snapshot_ts FROM forecasts")
    assert len(stored) == COINS * (LATER + 1)
    assert not stored.duplicated().any()
    assert set(stored.model_version) == {trained}
    # Never a snapshot the champion learned from: the first is its window's newest.
    times = sorted(pd.to_datetime(stored.snapshot_ts, utc=True, format="ISO8601").unique())
    assert times[0] == pd.Timestamp(champion["data_window_end"])

    # Outcomes: every forecast but the newest snapshot's has its realized value.
    hand = _hand_outcomes(engine)
    assert len(hand) == COINS * LATER
    joined = monitoring.outcomes(engine)
    assert len(joined) == len(hand)
    merged = joined.merge(
        hand.assign(snapshot_ts=pd.to_datetime(hand.snapshot_ts, utc=True)),
        on=["coin_id", "snapshot_ts"],
    )
    np.testing.assert_allclose(merged["actual_x"], merged["actual_y"], rtol=1e-12)

    # The monitoring numbers, by hand.
    y = hand["actual"].to_numpy(float)
    pred = hand["predicted_log_turnover"].to_numpy(float)
    pers = hand["current_log_turnover"].to_numpy(float)
    low, high = (
        hand["lower_log_turnover"].to_numpy(float),
        hand["upper_log_turnover"].to_numpy(float),
    )
    sst = ((y - y.mean()) ** 2).sum()
    expected = {
        "rows": len(y),
        "snapshots": LATER,
        "realized_r2": 1 - ((y - pred) ** 2).sum() / sst,
        "persistence_r2": 1 - ((y - pers) ** 2).sum() / sst,
        "skill": 1 - ((y - pred) ** 2).mean() / ((y - pers) ** 2).mean(),
        "mae": np.abs(y - pred).mean(),
        "coverage": ((y >= low) & (y <= high)).mean(),
        "mean_width": (high - low).mean(),
        "nominal_coverage": 0.8,
    }
    report = monitoring.monitor(settings)
    (version,) = report["versions"]
    assert version["version"] == trained and report["champion"] == trained
    for key, value in expected.items():
        assert version[key] == pytest.approx(value, rel=1e-9), key
    last3 = sorted(hand["target_ts"].unique())[-3:]
    recent = hand[hand["target_ts"].isin(last3)]
    r_y, r_p = recent["actual"].to_numpy(float), recent["predicted_log_turnover"].to_numpy(float)
    r_pers = recent["current_log_turnover"].to_numpy(float)
    assert version["recent"]["skill"] == pytest.approx(
        1 - ((r_y - r_p) ** 2).mean() / ((r_y - r_pers) ** 2).mean(), rel=1e-9
    )
    per = {p["target_ts"]: p for p in version["per_snapshot"]}
    assert len(per) == LATER and all(p["rows"] == COINS for p in per.values())

    # Scoring all those snapshots in one call gives what landing them one at a time stored
    # (features use only rows at or before their snapshot): the replay of bench/loop.py.
    model = registry.load_verified_model(settings)
    with engine.connect() as conn:
        every = [to_utc(r[0]) for r in conn.execute(SNAPSHOT_TIMES)]
    X, meta = forecasts.features_at(engine, list(times), every)
    at_once = forecasts.forecast_rows(model, X, meta, every, db.dialect_of(engine))
    kept = _table(
        engine,
        "SELECT coin_id, snapshot_ts, predicted_log_turnover, upper_log_turnover FROM forecasts",
    )
    kept["snapshot_ts"] = pd.to_datetime(kept["snapshot_ts"], utc=True, format="ISO8601")
    once = pd.DataFrame(at_once)
    once["snapshot_ts"] = pd.to_datetime(once["snapshot_ts"], utc=True, format="ISO8601")
    both = kept.merge(once, on=["coin_id", "snapshot_ts"], suffixes=("", "_once"))
    assert len(both) == len(kept)
    np.testing.assert_allclose(both["predicted_log_turnover"], both["predicted_log_turnover_once"])
    np.testing.assert_allclose(both["upper_log_turnover"], both["upper_log_turnover_once"])

    # Serving reads the stored forecast of the newest snapshot; it equals the computed one.
    symbol = _table(engine, "SELECT symbol FROM market_snapshots").symbol[0]
    served = forecasts.forecast_for_symbol(symbol, settings=settings)
    computed = predict_for_symbol(symbol, settings=settings)
    assert served["source"] == "stored"
    assert served["predicted_log_turnover"] == pytest.approx(computed["predicted_log_turnover"])
    assert served["interval"]["low"] == pytest.approx(computed["interval"]["low"])
    assert served["as_of"] == computed["as_of"]
    assert set(served) == set(computed) | {"source"}
    same = ("coin_id", "coin_name", "symbol", "market_cap", "history_snapshots", "model_version")
    assert {k: served[k] for k in same} == {k: computed[k] for k in same}
    assert served["liquidity_level"] == computed["liquidity_level"]


def test_new_snapshot_without_a_forecast_is_computed(settings, engine, drops, trained):
    ingest_paths([drops[EARLY]], settings=settings)  # landed, not yet forecast
    symbol = _table(engine, "SELECT symbol FROM market_snapshots").symbol[0]
    assert forecasts.forecast_for_symbol(symbol, settings=settings)["source"] == "computed"
    forecasts.forecast_new_snapshots(settings)
    assert forecasts.forecast_for_symbol(symbol, settings=settings)["source"] == "stored"


def test_a_stored_answer_is_kept_until_new_data_or_a_new_forecast(
    settings, engine, drops, trained, monkeypatch
):
    """The stored-forecast answer is read once per data version; an ingest or a
    forecast that lands later is served at once."""
    reads = []
    probe_row = db.probe_row

    def counting(url, statement, params=None):
        reads.append(statement)
        return probe_row(url, statement, params)

    monkeypatch.setattr(db, "probe_row", counting)
    symbol = _table(engine, "SELECT symbol FROM market_snapshots").symbol[0]
    first = forecasts.forecast_for_symbol(symbol, settings=settings)
    assert first["source"] == "stored"
    first["interval"]["low"] = -1.0  # a caller changing its answer changes no later one
    reads.clear()
    again = forecasts.forecast_for_symbol(symbol, settings=settings)
    assert again["interval"]["low"] > 0
    assert again == {**first, "interval": again["interval"]}
    assert len(reads) == 1  # the data version only: the forecast row is not read again

    ingest_paths([drops[EARLY]], settings=settings)  # new data: the kept answer is dropped
    landed = forecasts.forecast_for_symbol(symbol, settings=settings)
    assert landed["source"] == "computed" and landed["as_of"] > first["as_of"]
    forecasts.forecast_new_snapshots(settings)  # a new forecast: served at once
    stored = forecasts.forecast_for_symbol(symbol, settings=settings)
    assert stored["source"] == "stored" and stored["as_of"] == landed["as_of"]
    assert stored["predicted_log_turnover"] == pytest.approx(landed["predicted_log_turnover"])
    reads.clear()
    assert forecasts.forecast_for_symbol(symbol, settings=settings) == stored
    assert len(reads) == 1


def _degrade(paths, factor: float = 25.0):
    """Multiply the 24h volume of every row of these drops by ``factor``."""
    for path in paths:
        frame = pd.read_csv(path)
        frame["24h_volume"] = (frame["24h_volume"] * factor).round()
        frame.to_csv(path, index=False)


def test_alert_fires_on_a_constructed_degradation(settings, engine, drops, trained, caplog):
    for path in drops[EARLY : EARLY + 3]:
        ingest_paths([path], settings=settings)
        forecasts.forecast_new_snapshots(settings)
    assert monitoring.monitor(settings)["alerts"] == []
    assert monitoring.check(settings)["alerts"] == []
    # Turnover jumps up and down at each of the next three snapshots: nothing forecast
    # from the snapshot before can cover it.
    _degrade([drops[EARLY + 3], drops[EARLY + 5]])
    for path in drops[EARLY + 3 :]:
        ingest_paths([path], settings=settings)
        forecasts.forecast_new_snapshots(settings)
    report = monitoring.monitor(settings)
    assert report["alerts"], report["versions"][0]["recent"]
    recent = report["versions"][0]["recent"]
    with pytest.raises(monitoring.MonitoringAlert) as info:
        monitoring.check(settings)
    message = str(info.value)
    assert f"champion {trained}" in message
    assert "coverage" in message and f"{recent['coverage']:.1%}" in message
    assert "last 3 scored snapshots" in message
    assert main(["monitor", "--check"]) == 5  # the alert's own exit code
    with caplog.at_level(logging.ERROR, logger="liquidity.alerts"):
        from liquidity_core.monitoring import alerts

        alerts.notify(message, settings=settings)
    assert message in caplog.text


def test_training_publishes_and_the_forecast_step_scores_the_new_champion(
    settings, engine, drops, trained
):
    for path in drops[EARLY : EARLY + 2]:
        ingest_paths([path], settings=settings)
    eager = settings.with_overrides(promotion_margin=-100.0)  # promote whatever beats persistence
    second = run_training_cycle(eager, grid="fast", candidates=False)
    assert second["promoted"], second["reason"]
    sql = "SELECT COUNT(*) AS n FROM forecasts WHERE model_version = '{}'"
    # Training only publishes; forecasting is the forecast step's job.
    assert _table(engine, sql.format(second["version"])).n[0] == 0
    assert forecasts.forecast_new_snapshots(settings)["model_version"] == second["version"]
    assert _table(engine, sql.format(second["version"])).n[0] == COINS  # the newest snapshot
    registry.rollback(settings, trained)  # what `liquidity rollback` runs
    forecasts.forecast_new_snapshots(settings)  # what it then tells the user to run
    # The restored champion scored every snapshot since its window.
    assert _table(engine, sql.format(trained)).n[0] == COINS * 3


def test_forecast_before_any_model_is_a_clean_no_op(settings, engine, drops):
    ingest_paths(drops[:3], settings=settings)
    result = forecasts.forecast_new_snapshots(settings)
    assert result["model_version"] is None and result["rows"] == 0
    assert "no model has been published" in result["reason"]
    assert monitoring.monitor(settings)["versions"] == []
