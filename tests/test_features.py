
import numpy as np
import pandas as pd
import pytest

from liquidity_core.errors import InputError
from liquidity_core.model.features import BASE_FEATURES, build_features


def make_panel(coins=5, snapshots=12, seed=0, extras=True):
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=snapshots, freq="D", tz="UTC")
    df = pd.DataFrame(
        {
            "coin_id": np.tile([f"coin{i:03d}" for i in range(coins)], snapshots),
            "snapshot_ts": np.repeat(ts, coins),
        }
    )
    n = len(df)
    df["symbol"] = df["coin_id"].str.upper()
    df["coin_name"] = df["coin_id"].str.title()
    df["price"] = rng.lognormal(3, 1, n)
    df["volume_24h"] = rng.lognormal(15, 1, n)
    df["market_cap"] = rng.lognormal(18, 1, n)
    for c in ("change_1h", "change_24h", "change_7d"):
        df[c] = rng.normal(0, 0.05, n)
    if extras:
        df["x_sentiment"] = rng.normal(0, 1, n)
    return df


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
