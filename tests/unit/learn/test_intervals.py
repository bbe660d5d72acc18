"""Calibrated forecast intervals: split-conformal by market-cap tercile (model/intervals.py).

Each calibration is fitted on one sample and its coverage measured on another, as the
trainer does with the last CV fold and the holdout.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sqlalchemy as sa

from liquidity_core.learn import intervals


def _sample(rng, n):
    """Residuals whose spread depends on the market-cap tercile (small coins move most)."""
    mcap = rng.normal(size=n)
    scale = np.where(mcap < -0.43, 1.0, np.where(mcap < 0.43, 0.5, 0.2))
    return rng.standard_t(df=4, size=n) * scale, mcap


def test_nominal_coverage_on_fresh_rows_overall_and_by_tercile():
    rng = np.random.default_rng(0)
    resid, mcap = _sample(rng, 6000)
    calibration = intervals.fit(resid, mcap)
    assert calibration["nominal"] == intervals.NOMINAL
    assert calibration["n_by_tercile"] == [2000, 2000, 2000]

    new_resid, new_mcap = _sample(rng, 30000)
    point = rng.normal(size=len(new_resid))
    low, high = intervals.bounds(point, new_mcap, calibration)
    got = intervals.coverage(point + new_resid, low, high, new_mcap, calibration["mcap_edges"])
    assert 0.77 <= got["overall"] <= 0.83
    for share in got["by_tercile"]:
        assert 0.76 <= share <= 0.84


def test_one_width_for_all_would_miss_the_terciles():
    """Why the calibration is split by tercile: one interval for all rows over-covers the
    large coins and under-covers the small ones on the same data."""
    rng = np.random.default_rng(1)
    resid, mcap = _sample(rng, 6000)
    pooled = intervals.fit(resid, np.zeros_like(mcap))  # every row in one bucket
    new_resid, new_mcap = _sample(rng, 30000)
    low, high = intervals.bounds(
        np.zeros(len(new_resid)),
        new_mcap,
        {**pooled, "by_tercile": [pooled["overall"]] * 3, "mcap_edges": [-0.43, 0.43]},
    )
    got = intervals.coverage(new_resid, low, high, new_mcap, [-0.43, 0.43])
    small, _, large = got["by_tercile"]
    assert small < 0.70 and large > 0.95


def test_rows_without_market_cap_get_the_overall_interval():
    rng = np.random.default_rng(2)
    resid, mcap = _sample(rng, 3000)
    calibration = intervals.fit(resid, mcap)
    low, high = intervals.bounds(np.array([1.0, 1.0]), np.array([np.nan, 5.0]), calibration)
    assert (low[0] - 1.0, high[0] - 1.0) == pytest.approx(tuple(calibration["overall"]))
    assert (low[1] - 1.0, high[1] - 1.0) == pytest.approx(tuple(calibration["by_tercile"][2]))


def test_a_thin_tercile_falls_back_to_all_residuals():
    resid = np.linspace(-1, 1, 100)
    mcap = np.r_[np.zeros(95), np.ones(5)]  # the top tercile holds 5 rows
    calibration = intervals.fit(resid, mcap)
    assert min(calibration["n_by_tercile"]) < intervals.MIN_BUCKET_ROWS
    thin = int(np.argmin(calibration["n_by_tercile"]))
    assert calibration["by_tercile"][thin] == calibration["overall"]


def test_training_records_the_calibration_and_the_holdout_coverage(settings, engine, tmp_path):
    """A trained version stores its calibration, fitted before the holdout, and the
    coverage its interval reached on the holdout; the served interval is that one."""
    from support.training import train_on_demo

    from liquidity_core.registry.champion import load_verified_model
    from liquidity_core.serving.predict import predict_for_symbol

    result = train_on_demo(settings, tmp_path)
    model = load_verified_model(settings)
    calibration = model.metadata["interval_calibration"]
    assert calibration["n_calibration"] > 0
    low, high = calibration["overall"]
    assert low < 0 < high
    coverage = model.metadata["holdout_coverage"]
    assert 0.0 <= coverage <= 1.0
    assert len(model.metadata["holdout_coverage_by_tercile"]) == 3
    assert result["holdout_coverage"] == pytest.approx(coverage)  # train --json's payload

    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT interval_calibration, holdout_coverage FROM model_versions "
                "WHERE version = :v"
            ),
            {"v": model.version},
        ).one()
    assert json.loads(stored[0]) == calibration
    assert stored[1] == pytest.approx(coverage)

    with engine.connect() as conn:
        symbol = conn.execute(sa.text("SELECT symbol FROM market_snapshots LIMIT 1")).scalar()
    got = predict_for_symbol(symbol, settings=settings)
    point = got["predicted_log_turnover"]
    width = np.log(got["interval"]["high"]) - np.log(got["interval"]["low"])
    # The served width is the row's tercile width of scaled residuals times the row's
    # scale (its recent mean absolute change of log turnover, raised to the floor).
    from liquidity_core.features.build import build_features
    from liquidity_core.store.snapshots import load_snapshots

    X, _y, meta = build_features(load_snapshots(engine))
    newest = meta["snapshot_ts"] == meta["snapshot_ts"].max()
    row = X[newest & (meta["symbol"] == symbol).to_numpy()].iloc[-1]
    raw = row[calibration["scale_feature"]]
    scale = max(raw, calibration["scale_floor"]) if np.isfinite(raw) else calibration["scale_fill"]
    widths = [hi - lo for lo, hi in [*calibration["by_tercile"], calibration["overall"]]]
    assert any(w * scale == pytest.approx(width, rel=1e-6) for w in widths)
    assert np.log(got["interval"]["low"]) < point < np.log(got["interval"]["high"])
