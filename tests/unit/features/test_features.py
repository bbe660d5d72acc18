import numpy as np
import pandas as pd
import pytest
from support.panels import make_panel

from liquidity_core.errors import InputError
from liquidity_core.features.build import (
    BASE_FEATURES,
    LONG_WINDOW,
    V1_FEATURES,
    build_features,
)
from liquidity_core.features.columns import MARKET_CHANGE_LAG


def test_target_is_next_snapshot_turnover_of_same_coin():
    panel = make_panel(coins=3, snapshots=4)
    X, y, meta = build_features(panel)
    assert list(X.columns) == [*BASE_FEATURES, "x_sentiment"]
    assert len(X) == len(y) == len(meta) == len(panel)
    lt = np.log(panel["volume_24h"] / panel["market_cap"])
    by_key = dict(zip(zip(panel["coin_id"], panel["snapshot_ts"], strict=True), lt, strict=True))
    for i in range(len(meta)):
        coin, ts = meta.loc[i, "coin_id"], meta.loc[i, "snapshot_ts"]
        nxt = ts + pd.Timedelta(days=1)
        expected = by_key.get((coin, nxt), np.nan)
        assert y[i] == pytest.approx(expected, nan_ok=True)
        assert X.loc[i, "log_turnover"] == pytest.approx(by_key[(coin, ts)])
    assert y[meta["t"] == 3].isna().all()
    assert meta["snapshot_ts"].is_monotonic_increasing


def test_target_is_nan_when_coin_misses_next_snapshot():
    panel = make_panel(coins=2, snapshots=4)
    gone = (panel["coin_id"] == "coin001") & (
        panel["snapshot_ts"] == panel["snapshot_ts"].max() - pd.Timedelta(days=1)
    )
    X, y, meta = build_features(panel[~gone])
    row = meta.index[(meta["coin_id"] == "coin001") & (meta["t"] == 1)][0]
    assert np.isnan(y[row])  # next panel time is t=2 where coin001 is absent
    row3 = meta.index[(meta["coin_id"] == "coin001") & (meta["t"] == 3)][0]
    assert X.loc[row3, "snapshots_seen"] == 3  # seen at t=0,1,3


def test_windows_and_rank():
    panel = make_panel(coins=4, snapshots=10)
    X, _y, meta = build_features(panel)
    lt = X["log_turnover"]
    c = meta["coin_id"] == "coin002"
    hist = lt[c].to_numpy()
    got = X.loc[c, "log_turnover_mean_3"].to_numpy()
    assert got[5] == pytest.approx(hist[3:6].mean())
    assert got[0] == pytest.approx(hist[0])
    assert X.loc[c, "log_turnover_mean_30"].to_numpy()[9] == pytest.approx(hist.mean())
    ret = X.loc[c, "return_1"].to_numpy()
    assert X.loc[c, "volatility_7"].to_numpy()[8] == pytest.approx(np.std(ret[2:9], ddof=1))
    first = meta["t"] == 0
    ranks = X.loc[first, "mcap_rank"].to_numpy()
    caps = panel.loc[panel["snapshot_ts"] == panel["snapshot_ts"].min(), "market_cap"].to_numpy()
    assert list(ranks) == list(pd.Series(caps).rank(ascending=False).to_numpy())


def test_no_feature_uses_data_after_t():
    panel = make_panel(coins=6, snapshots=15, seed=3)
    X, y, meta = build_features(panel)
    cut = panel["snapshot_ts"].unique()[8]
    rng = np.random.default_rng(99)
    later = panel["snapshot_ts"] > cut
    perturbed = panel.copy()
    for col in ("price", "volume_24h", "market_cap"):
        perturbed.loc[later, col] *= rng.lognormal(0, 2, later.sum())
    for col in ("change_1h", "change_24h", "change_7d", "x_sentiment"):
        perturbed.loc[later, col] = rng.normal(0, 3, later.sum())
    # New coins appear later, others vanish: still no effect on the past.
    extra = perturbed[later & (perturbed["coin_id"] == "coin000")].assign(
        coin_id="newcoin", market_cap=1e15
    )
    perturbed = pd.concat([perturbed[~(later & (perturbed["coin_id"] == "coin005"))], extra])
    X2, y2, meta2 = build_features(perturbed.sample(frac=1, random_state=1))
    past = (meta["snapshot_ts"] <= cut).to_numpy()
    past2 = (meta2["snapshot_ts"] <= cut).to_numpy()
    pd.testing.assert_frame_equal(X[past].reset_index(drop=True), X2[past2].reset_index(drop=True))
    # Targets before the cut's last snapshot are unchanged too; those at the cut do change.
    before = (meta["snapshot_ts"] < cut).to_numpy()
    before2 = (meta2["snapshot_ts"] < cut).to_numpy()
    np.testing.assert_array_equal(y[before].to_numpy(), y2[before2].to_numpy())


def test_missing_column_and_duplicates_are_input_errors():
    panel = make_panel(coins=2, snapshots=3)
    with pytest.raises(InputError, match="market_cap"):
        build_features(panel.drop(columns="market_cap"))
    with pytest.raises(InputError, match="coin000"):
        build_features(pd.concat([panel, panel.iloc[:1]]))


def test_zero_volume_and_bad_cap_stay_finite_or_nan():
    panel = make_panel(coins=2, snapshots=3, extras=False)
    panel.loc[0, "volume_24h"] = 0.0
    panel.loc[1, "market_cap"] = 0.0
    X, y, meta = build_features(panel)
    assert np.isfinite(
        X.loc[(meta["coin_id"] == "coin000") & (meta["t"] == 0), "log_turnover"]
    ).all()
    assert X.loc[(meta["coin_id"] == "coin001") & (meta["t"] == 0), "log_turnover"].isna().all()


def test_a_million_row_panel_gives_a_row_and_a_target_per_snapshot():
    # Its speed is measured in bench/retrain.py (features are part of the nightly cycle).
    panel = make_panel(coins=2000, snapshots=500, extras=False)
    X, y, meta = build_features(panel)
    assert X.shape == (1_000_000, len(BASE_FEATURES))
    assert list(meta["t"]) == sorted(meta["t"])
    # Every coin is in every snapshot: only the last snapshot lacks a target.
    assert int(y.isna().sum()) == 2000
    assert meta.loc[y.isna(), "t"].eq(499).all()


def test_market_wide_memory_and_calendar_features():
    panel = make_panel(coins=5, snapshots=20, seed=7)
    X, _y, meta = build_features(panel)
    lt = X["log_turnover"]
    for t in (0, 9, 19):
        at = (meta["t"] == t).to_numpy()
        assert (X.loc[at, "market_log_turnover"] == lt[at].median()).all()
        dev = X.loc[at, "log_turnover_dev_market"].to_numpy()
        np.testing.assert_allclose(dev, lt[at].to_numpy() - lt[at].median())
    med = X.groupby(meta["t"])["market_log_turnover"].first().to_numpy()
    change = X.groupby(meta["t"])["market_log_turnover_change"].first().to_numpy()
    assert np.isnan(change[0])
    assert change[3] == pytest.approx(med[3] - med[0])
    assert change[12] == pytest.approx(med[12] - med[12 - MARKET_CHANGE_LAG])
    c = (meta["coin_id"] == "coin001").to_numpy()
    hist = lt[c].to_numpy()
    assert X.loc[c, f"log_turnover_mean_{LONG_WINDOW}"].to_numpy()[15] == pytest.approx(
        hist[:16].mean()
    )
    w = 0.5 ** (np.arange(16)[::-1] / 2)
    assert X.loc[c, "log_turnover_ewm_2"].to_numpy()[15] == pytest.approx(
        np.sum(w * hist[:16]) / w.sum()
    )
    assert X.loc[c, "log_turnover_dev_long"].to_numpy()[15] == pytest.approx(
        hist[15] - hist[:16].mean()
    )
    diffs = np.abs(np.diff(hist))
    assert X.loc[c, "abs_log_turnover_diff_mean_7"].to_numpy()[10] == pytest.approx(
        diffs[3:10].mean()
    )
    # Daily cadence: one day between snapshots, the target's weekday is tomorrow's.
    gaps = X.loc[c, "gap_days"].to_numpy()
    assert np.isnan(gaps[0]) and (gaps[1:] == 1.0).all()
    ts = meta.loc[c, "snapshot_ts"].iloc[5]
    assert X.loc[c, "target_weekday"].to_numpy()[5] == (ts + pd.Timedelta(days=1)).weekday()


def test_monthly_cadence_has_no_target_weekday_and_gap_in_days():
    panel = make_panel(coins=3, snapshots=6)
    month_ends = pd.date_range("2024-01-31", periods=6, freq="ME", tz="UTC")
    panel["snapshot_ts"] = panel["snapshot_ts"].map(
        dict(zip(sorted(panel["snapshot_ts"].unique()), month_ends, strict=True))
    )
    X, _y, _meta = build_features(panel)
    assert X["target_weekday"].isna().all()
    assert set(X["gap_days"].dropna()) <= {28.0, 29.0, 30.0, 31.0}


def test_v1_feature_set_is_the_first_models_columns():
    panel = make_panel(coins=3, snapshots=5)
    X1, y1, _ = build_features(panel, feature_set="v1")
    X2, y2, _ = build_features(panel)
    assert list(X1.columns) == [*V1_FEATURES, "x_sentiment"]
    pd.testing.assert_frame_equal(X1, X2[X1.columns])
    np.testing.assert_array_equal(y1.to_numpy(), y2.to_numpy())
    with pytest.raises(InputError, match="feature_set"):
        build_features(panel, feature_set="v9")


def test_no_new_feature_uses_data_after_t_at_any_cut():
    """The leak test at every cut, column by column, for the features added in v2."""
    panel = make_panel(coins=5, snapshots=14, seed=11)
    X, _y, meta = build_features(panel)
    new = [c for c in BASE_FEATURES if c not in V1_FEATURES]
    rng = np.random.default_rng(5)
    times = np.sort(panel["snapshot_ts"].unique())
    for cut in times[2:-1:3]:
        later = panel["snapshot_ts"] > cut
        perturbed = panel.copy()
        for col in ("price", "volume_24h", "market_cap"):
            perturbed.loc[later, col] *= rng.lognormal(0, 2, later.sum())
        X2, _y2, meta2 = build_features(perturbed)
        past = (meta["snapshot_ts"] <= cut).to_numpy()
        past2 = (meta2["snapshot_ts"] <= cut).to_numpy()
        for c in new:  # equal up to the rounding of the panel-wide cumulative sums
            np.testing.assert_allclose(
                X.loc[past, c].to_numpy(),
                X2.loc[past2, c].to_numpy(),
                rtol=1e-10,
                atol=1e-12,
                err_msg=c,
            )
