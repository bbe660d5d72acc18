"""``build_features`` gives the same numbers whichever way it is called.

Serving calls it with a mapping of plain arrays and ``rows=`` (only the rows to forecast),
training with a whole DataFrame; the cross-sectional pieces (market medians, market-cap
rank) and the exponentially weighted means are computed with NumPy. These tests hold all
of that to straightforward references (pandas ``groupby``, per-coin loops) on random
panels with gaps, NaNs, zero volumes, non-positive caps, ties and any row order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liquidity_core.features.build import (
    CROSS_SECTION_FEATURES,
    EWM_HALFLIVES,
    LONG_WINDOW,
    build_features,
    log_turnover,
    own_features,
)


def random_panel(seed: int, coins: int, snapshots: int, *, ties: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    freq = ["D", "h", "7D"][seed % 3]
    ts = pd.date_range("2024-01-01", periods=snapshots, freq=freq, tz="UTC")
    df = pd.DataFrame(
        {
            "coin_id": np.tile([f"c{i:03d}" for i in range(coins)], snapshots),
            "snapshot_ts": np.repeat(ts, coins),
        }
    )
    n = len(df)
    df["symbol"] = df["coin_id"].str.upper()
    df["coin_name"] = df["coin_id"]
    df["price"] = rng.lognormal(3, 1, n)
    df["volume_24h"] = rng.lognormal(15, 1, n)
    df["market_cap"] = rng.lognormal(18, 1, n)
    if ties:
        df["market_cap"] = np.round(df["market_cap"], -7)
    for c in ("change_1h", "change_24h", "change_7d"):
        df[c] = rng.normal(0, 0.05, n)
    df["x_sentiment"] = rng.normal(size=n)
    for c in ("price", "volume_24h", "market_cap", "change_24h"):
        df.loc[rng.random(n) < 0.05, c] = np.nan
    df.loc[rng.random(n) < 0.02, "volume_24h"] = 0.0
    df.loc[rng.random(n) < 0.02, "market_cap"] = -1.0
    df = df[rng.random(n) >= 0.1]  # coins missing from some snapshots
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


CASES = [(seed, 1 + seed % 17, 1 + (seed * 7) % 80, seed % 4 == 0) for seed in range(24)]


@pytest.mark.parametrize(("seed", "coins", "snapshots", "ties"), CASES)
def test_market_medians_and_ranks_match_pandas_groupby(seed, coins, snapshots, ties):
    panel = random_panel(seed, coins, snapshots, ties=ties)
    X, _y, meta = build_features(panel)
    key = ["snapshot_ts", "coin_id"]
    rows = panel.assign(snapshot_ts=pd.to_datetime(panel["snapshot_ts"], utc=True))
    rows = rows.set_index(key).loc[pd.MultiIndex.from_frame(meta[key])].reset_index()
    t = meta["t"].to_numpy()
    caps = rows["market_cap"].astype(float)
    want_rank = caps.groupby(t).rank(ascending=False, method="min").to_numpy()
    np.testing.assert_array_equal(X["mcap_rank"].to_numpy(), want_rank)
    lt = pd.Series(log_turnover(rows["volume_24h"], rows["market_cap"]))
    med = lt[np.isfinite(lt)].groupby(t[np.isfinite(lt)]).median()
    want_med = pd.Series(t).map(med).to_numpy()
    np.testing.assert_array_equal(X["market_log_turnover"].to_numpy(), want_med)


@pytest.mark.parametrize(("seed", "coins", "snapshots", "ties"), CASES[:12])
def test_ewm_is_the_time_weighted_mean_of_the_finite_values_in_the_window(
    seed, coins, snapshots, ties
):
    panel = random_panel(seed, coins, snapshots, ties=ties)
    X, _y, meta = build_features(panel)
    ordered = (
        panel.assign(snapshot_ts=pd.to_datetime(panel["snapshot_ts"], utc=True))
        .set_index(["snapshot_ts", "coin_id"])
        .loc[pd.MultiIndex.from_frame(meta[["snapshot_ts", "coin_id"]])]
        .reset_index()
    )
    lt_all = log_turnover(ordered["volume_24h"], ordered["market_cap"])
    t = meta["t"].to_numpy()  # the snapshot time's code on the panel's time axis
    for h in EWM_HALFLIVES:
        want = np.full(len(ordered), np.nan)
        for _coin, idx in ordered.groupby("coin_id").indices.items():
            idx = idx[np.argsort(t[idx], kind="stable")]
            for j, row in enumerate(idx):
                # The coin's rows at the last LONG_WINDOW snapshot times, newest first,
                # weighted by their lag in snapshot times.
                window = [i for i in idx[: j + 1] if t[i] > t[row] - LONG_WINDOW][::-1]
                values = lt_all[window]
                w = 0.5 ** ((t[row] - t[window]) / h)
                ok = np.isfinite(values)
                if ok.any():
                    want[row] = np.sum(values[ok] * w[ok]) / np.sum(w[ok])
        np.testing.assert_allclose(
            X[f"log_turnover_ewm_{h}"].to_numpy(), want, rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize(("seed", "coins", "snapshots", "ties"), CASES)
def test_selected_rows_get_exactly_what_the_whole_panel_gives(seed, coins, snapshots, ties):
    panel = random_panel(seed, coins, snapshots, ties=ties)
    mask = np.random.default_rng(seed).random(len(panel)) < 0.3
    full = build_features(panel)
    part = build_features(panel, rows=mask)
    stamps = pd.to_datetime(panel["snapshot_ts"], utc=True)
    wanted = pd.MultiIndex.from_arrays([panel["coin_id"][mask], stamps[mask]])
    keep = pd.MultiIndex.from_frame(full.meta[["coin_id", "snapshot_ts"]]).isin(wanted)
    pd.testing.assert_frame_equal(part.X, full.X[keep].reset_index(drop=True), check_exact=True)
    pd.testing.assert_series_equal(part.y, full.y[keep].reset_index(drop=True), check_exact=True)
    pd.testing.assert_frame_equal(
        part.meta, full.meta[keep].reset_index(drop=True), check_exact=True
    )
    np.testing.assert_array_equal(part.rows, full.rows[keep])


@pytest.mark.parametrize(("seed", "coins", "snapshots", "ties"), CASES)
def test_own_features_are_build_features_without_the_cross_section(seed, coins, snapshots, ties):
    """Serving's own_features: the selected rows in the panel's order, every feature bit
    for bit build_features' but the ones from the other coins at the row's time (NaN)."""
    panel = random_panel(seed, coins, snapshots, ties=ties)
    mask = np.random.default_rng(seed + 100).random(len(panel)) < 0.3
    arrays = {c: panel[c].to_numpy() for c in panel.columns if c != "snapshot_ts"}
    arrays["snapshot_ts"] = (
        pd.DatetimeIndex(panel["snapshot_ts"]).tz_convert(None).as_unit("ns").to_numpy()
    )
    times = np.unique(arrays["snapshot_ts"])
    full = build_features(arrays, rows=mask, times=times)
    own = own_features(arrays, rows=mask, times=times)
    assert list(own) == list(full.X.columns)
    back = np.argsort(full.rows, kind="stable")  # full's rows in the panel's order
    for c, values in own.items():
        if c in CROSS_SECTION_FEATURES:
            assert np.isnan(values).all(), c
        else:
            np.testing.assert_array_equal(values, full.X[c].to_numpy()[back], err_msg=c)


def test_a_mapping_of_arrays_gives_the_same_as_a_frame():
    panel = random_panel(3, 12, 70)
    arrays = {c: panel[c].to_numpy() for c in panel.columns if c != "snapshot_ts"}
    stamps = pd.DatetimeIndex(panel["snapshot_ts"]).tz_convert(None).as_unit("ns")
    arrays["snapshot_ts"] = stamps.to_numpy()
    a, b = build_features(panel), build_features(arrays)
    pd.testing.assert_frame_equal(a.X, b.X, check_exact=True)
    pd.testing.assert_series_equal(a.y, b.y, check_exact=True)
    ns = {c: a.meta[c].dt.as_unit("ns") for c in ("snapshot_ts", "target_ts")}
    pd.testing.assert_frame_equal(a.meta.assign(**ns), b.meta, check_exact=True)
    np.testing.assert_array_equal(a.rows, b.rows)


def test_integer_coin_ids_give_the_same_as_text_ones():
    """Serving's pseudo-coins are row numbers (coded without pandas): the same features
    as text ids in the same order."""
    panel = random_panel(4, 11, 60)
    arrays = {c: panel[c].to_numpy() for c in panel.columns if c != "snapshot_ts"}
    arrays["snapshot_ts"] = (
        pd.DatetimeIndex(panel["snapshot_ts"]).tz_convert(None).as_unit("ns").to_numpy()
    )
    mask = np.random.default_rng(4).random(len(panel)) < 0.4
    numbered = dict(arrays, coin_id=np.array([int(c[1:]) * 7 for c in arrays["coin_id"]]))
    a, b = build_features(arrays, rows=mask), build_features(numbered, rows=mask)
    pd.testing.assert_frame_equal(a.X, b.X, check_exact=True)
    np.testing.assert_array_equal(a.rows, b.rows)
    own_a, own_b = own_features(arrays, rows=mask), own_features(numbered, rows=mask)
    for c in own_a:
        np.testing.assert_array_equal(own_a[c], own_b[c], err_msg=c)


def test_rows_must_flag_every_panel_row():
    from liquidity_core.errors import InputError

    panel = random_panel(1, 3, 5)
    with pytest.raises(InputError, match="rows has 2 flags for a panel of"):
        build_features(panel, rows=[True, False])


def test_both_ewm_paths_give_the_same_numbers(monkeypatch):
    """Small selections sum the lags along a matrix, large ones lag by lag: same sums."""
    from liquidity_core.features import windows

    panel = random_panel(5, 9, 90)
    mask = np.random.default_rng(5).random(len(panel)) < 0.5
    assert mask.sum() * LONG_WINDOW <= windows.EWM_MATRIX_CELLS  # the matrix path
    matrix = build_features(panel, rows=mask).X
    monkeypatch.setattr(windows, "EWM_MATRIX_CELLS", 0)  # the lag-by-lag path
    walked = build_features(panel, rows=mask).X
    pd.testing.assert_frame_equal(matrix, walked, check_exact=True)
