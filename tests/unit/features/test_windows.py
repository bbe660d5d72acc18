"""The feature windows against plain per-row definitions, on panels with gaps and ties."""

import numpy as np
import pandas as pd
import pytest

from liquidity_core.features import windows


def sorted_panel(seed=0, coins=6, max_len=15, nan_share=0.2, times=30):
    """Values sorted by coin, then time, and their (coin, time) key: each coin is present
    at a random subset of the panel's ``times`` snapshot times (gaps included)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len, coins)
    t = np.concatenate([np.sort(rng.choice(times, n, replace=False)) for n in lengths])
    coin = np.repeat(np.arange(coins), lengths)
    values = rng.normal(0, 1, lengths.sum())
    values[rng.random(len(values)) < nan_share] = np.nan
    return values, windows.coin_time_key(coin, t), coin, t


def in_window(coin, t, i, window):
    """Rows of row ``i``'s coin at one of the last ``window`` snapshot times, up to ``i``."""
    return [j for j in range(i + 1) if coin[j] == coin[i] and t[j] > t[i] - window]


def reference_sums(values, coin, t, window, at):
    out = []
    for i in at:
        v = values[in_window(coin, t, i, window)]
        v = v[np.isfinite(v)]
        out.append((v.sum(), (v * v).sum(), len(v)))
    return [np.array(c) for c in zip(*out, strict=True)]


@pytest.mark.parametrize("window", [1, 3, 7])
@pytest.mark.parametrize("seed", [0, 1])
def test_window_sums_are_the_finite_values_of_the_coins_last_times(window, seed):
    values, key, coin, t = sorted_panel(seed)
    at = np.arange(len(values))
    got = windows.window_sums(values, key, window, at)
    for g, want in zip(got, reference_sums(values, coin, t, window, at), strict=True):
        np.testing.assert_allclose(g, want, atol=1e-12)
    at = at[::3]
    got = windows.window_sums(values, key, window, at)
    for g, want in zip(got, reference_sums(values, coin, t, window, at), strict=True):
        np.testing.assert_allclose(g, want, atol=1e-12)


def reference_ewm(values, coin, t, halflife, window, at):
    out = []
    for i in at:
        num = den = 0.0
        for j in in_window(coin, t, i, window):
            if np.isfinite(values[j]):
                w = 0.5 ** ((t[i] - t[j]) / halflife)
                num += w * values[j]
                den += w
        out.append(num / den if den > 0 else np.nan)
    return np.array(out)


@pytest.mark.parametrize("matrix", [True, False])
@pytest.mark.parametrize("window", [1, 4, 30])
def test_ewm_windows_weigh_each_lag_by_its_halflife(monkeypatch, matrix, window):
    if not matrix:
        monkeypatch.setattr(windows, "EWM_MATRIX_CELLS", 0)
    values, key, coin, t = sorted_panel(2, nan_share=0.3)
    at = np.arange(len(values))
    got = windows.ewm_windows(values, key, (1.0, 3.0), window, at)
    assert len(got) == 2
    for h, g in zip((1.0, 3.0), got, strict=True):
        np.testing.assert_allclose(
            g, reference_ewm(values, coin, t, h, window, at), rtol=1e-12, atol=1e-12
        )


def test_ewm_windows_do_not_depend_on_the_path(monkeypatch):
    values, key, _coin, _t = sorted_panel(3, coins=20, max_len=40, times=60)
    at = np.arange(len(values))
    matrix = windows.ewm_windows(values, key, (2.0, 5.0), 30, at)
    monkeypatch.setattr(windows, "EWM_MATRIX_CELLS", 0)
    loop = windows.ewm_windows(values, key, (2.0, 5.0), 30, at)
    for a, b in zip(matrix, loop, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ewm_windows_of_no_rows_are_empty():
    got = windows.ewm_windows(np.array([1.0]), np.array([0]), (1.0,), 5, np.array([], int))
    assert len(got) == 1 and got[0].shape == (0,)


def time_panel(seed=0, n=200, n_times=9):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, n_times - 1, n)  # the last time has no rows
    values = rng.integers(0, 6, n).astype(float)  # many ties
    values[rng.random(n) < 0.15] = np.nan
    return values, t, n_times


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_median_per_time_is_pandas_median(seed):
    values, t, n_times = time_panel(seed)
    values = values + np.random.default_rng(seed).normal(0, 0.01, len(values))
    want = pd.Series(values).groupby(t).median().reindex(range(n_times)).to_numpy()
    np.testing.assert_allclose(windows.by_time_median(values, t, n_times), want)


def test_median_of_even_and_odd_counts_and_of_nothing():
    values = np.array([1.0, 5.0, 2.0, 10.0, 4.0, 3.0, np.nan])
    t = np.array([0, 0, 1, 1, 1, 2, 3])
    got = windows.by_time_median(values, t, 5)
    np.testing.assert_array_equal(got[:3], [3.0, 4.0, 3.0])
    assert np.isnan(got[3]) and np.isnan(got[4])
    assert np.isnan(windows.by_time_median(np.array([np.nan]), np.array([0]), 1)).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_within_time_is_pandas_min_rank_largest_first(seed):
    values, t, _ = time_panel(seed)
    want = pd.Series(values).groupby(t).rank(ascending=False, method="min").to_numpy()
    np.testing.assert_array_equal(windows.rank_within_time(values, t), want)


def test_rank_of_ties_and_missing_values():
    values = np.array([3.0, 1.0, 3.0, np.nan, 2.0, 2.0])
    t = np.array([0, 0, 0, 0, 1, 1])
    got = windows.rank_within_time(values, t)
    np.testing.assert_array_equal(got[[0, 1, 2, 4, 5]], [1, 3, 1, 1, 1])
    assert np.isnan(got[3])


@pytest.mark.parametrize("top", [3, 2**15 - 1, 2**15, 2**16])
def test_order_by_time_sorts_by_time_then_value(top):
    rng = np.random.default_rng(0)
    t = top - rng.integers(0, 4, 50)
    t[0] = top
    values = rng.normal(0, 1, 50)
    order = windows.order_by_time(values, t)
    assert sorted(order.tolist()) == list(range(50))
    keys = list(zip(t[order].tolist(), values[order].tolist(), strict=True))
    assert keys == sorted(keys)


def test_the_longest_window_never_reaches_into_the_previous_coins_rows():
    # Coin 0 at times 0, 1 and 5; coin 1 at time 0 only.
    coin, t = np.array([0, 0, 0, 1]), np.array([0, 1, 5, 0])
    key = windows.coin_time_key(coin, t)
    assert (np.diff(key) > 0).all()
    values = np.array([1.0, 2.0, 4.0, 8.0])
    total, _, count = windows.window_sums(values, key, windows.MAX_WINDOW, np.array([2, 3]))
    assert total.tolist() == [7.0, 8.0] and count.tolist() == [3, 1]
    assert windows.coin_time_key(np.array([], dtype=int), np.array([], dtype=int)).size == 0
