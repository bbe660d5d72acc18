"""Feature drift: PSI by hand, and the forecast task storing it per snapshot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sqlalchemy as sa

from liquidity_core.ingest import ingest_paths
from liquidity_core.inputs.demo import write_demo_drops
from liquidity_core.learn import psi
from liquidity_core.monitoring import drift
from liquidity_core.monitoring.accuracy import monitor
from liquidity_core.monitoring.forecasts import forecast_new_snapshots
from liquidity_core.training.cycle import run_training_cycle


def test_psi_by_hand():
    expected, actual = [0.5, 0.5, 0.0], [0.25, 0.75, 0.0]
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi.psi(expected, actual) == pytest.approx(by_hand)
    assert psi.psi(expected, expected) == 0.0


def test_shares_put_missing_values_in_their_own_bin():
    shares = psi.shares_of([0.0, 1.0, 2.0, np.nan], [0.5, 1.5])
    assert shares == [0.25, 0.25, 0.25, 0.25]


def test_reference_of_the_same_data_has_no_drift():
    values = np.random.default_rng(0).normal(size=1000)
    ref = psi.reference_of(values)
    assert len(ref["edges"]) == psi.BINS - 1
    assert psi.psi(ref["shares"], psi.shares_of(values, ref["edges"])) == pytest.approx(0.0)
    shifted = psi.shares_of(values + 2.0, ref["edges"])
    assert psi.psi(ref["shares"], shifted) > drift.FLAG_PSI


def test_forecast_task_stores_drift_per_snapshot(settings, engine, tmp_path):
    coins = 60  # enough coins at a snapshot for a flag to count
    drops = write_demo_drops(tmp_path / "d", coins=coins, snapshots=22, seed=2)
    ingest_paths(drops[:20], settings=settings)
    version = run_training_cycle(settings, grid="fast", candidates=False)["version"]
    ingest_paths(drops[20:], settings=settings)
    result = forecast_new_snapshots(settings)
    # Training only publishes: the forecast step scores the newest snapshot at training
    # and the two that landed after it.
    assert result["drift"]["snapshots"] == 3
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT snapshot_ts, feature, psi, n_rows FROM feature_drift")
        ).fetchall()
        refs = conn.execute(sa.text("SELECT model_version FROM drift_references")).fetchall()
    assert [r.model_version for r in refs] == [version]
    assert len({r.snapshot_ts for r in rows}) == 3
    assert all(r.n_rows == coins for r in rows)
    features = {r.feature for r in rows}
    assert "log_turnover" in features and not features & psi.SNAPSHOT_CONSTANT
    latest = monitor(settings)["drift"]
    assert latest["model_version"] == version and len(latest["features"]) == len(features)
    # A re-run stores nothing twice.
    forecast_new_snapshots(settings)
    with engine.connect() as conn:
        again = conn.execute(sa.text("SELECT COUNT(*) FROM feature_drift")).scalar_one()
    assert again == len(rows)


def test_a_version_without_a_stored_reference_gets_one_from_a_bounded_sample(
    settings, engine, tmp_path, monkeypatch
):
    # Versions published before training stored the reference: it is computed once from
    # the stored window before the holdout, read in chunks, over at most REFERENCE_ROWS.
    from liquidity_core.registry.champion import load_verified_model

    drops = write_demo_drops(tmp_path / "d", coins=30, snapshots=20, seed=4)
    ingest_paths(drops, settings=settings)
    version = run_training_cycle(settings, grid="fast", candidates=False)["version"]
    model = load_verified_model(settings)
    stored = drift.training_reference(engine, model)
    assert stored["rows"] > 0 and "log_turnover" in stored["features"]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM drift_references"))
    monkeypatch.setattr(drift, "REFERENCE_ROWS", 100)
    again = drift.training_reference(engine, model)
    assert again["rows"] == 100
    assert set(again["features"]) == set(stored["features"])
    with engine.connect() as conn:
        refs = conn.execute(sa.text("SELECT model_version FROM drift_references")).fetchall()
    assert [r.model_version for r in refs] == [version]
