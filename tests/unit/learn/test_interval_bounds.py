"""The interval calibration's arithmetic: conformal quantiles, terciles, scales, bounds."""

import numpy as np
import pandas as pd
import pytest

from liquidity_core.learn import intervals


def test_the_quantiles_are_the_split_conformal_order_statistics():
    residuals = np.arange(1.0, 100.0)  # 99 residuals: the 10th and 90th of n + 1 = 100
    cal = intervals.fit(np.append(residuals, np.nan), np.zeros(100), nominal=0.5)
    assert cal["overall"] == [25.0, 75.0] and cal["nominal"] == 0.5
    assert cal["n_calibration"] == 99
    cal = intervals.fit(residuals, np.zeros(99))
    # (1 - 0.8) / 2 is a hair below 0.1 in floating point: the lower bound may be the 9th.
    assert cal["overall"][0] in (9.0, 10.0) and cal["overall"][1] == 90.0
    assert cal["nominal"] == intervals.NOMINAL


def test_few_residuals_give_their_extremes():
    cal = intervals.fit([3.0, -2.0, 1.0], [0.0, 1.0, 2.0])
    assert cal["overall"] == [-2.0, 3.0]
    # Ten residuals: the upper bound is the ceil(11 * 0.9) = 10th, the largest.
    cal = intervals.fit(np.arange(1.0, 11.0), np.zeros(10))
    assert cal["overall"] == [1.0, 10.0]


def test_no_residuals_give_no_interval():
    cal = intervals.fit([np.nan, np.nan], [0.0, 1.0])
    assert np.isnan(cal["overall"]).all() and cal["n_calibration"] == 0


def test_terciles_count_an_edge_in_the_upper_one_and_missing_caps_in_none():
    got = intervals.bucket_of([0.5, 1.0, 1.5, 2.0, 3.0, np.nan], [1.0, 2.0])
    assert got.tolist() == [0, 1, 1, 2, 2, -1]


def tercile_panel(per_tercile=(200, 200, 200), seed=0):
    rng = np.random.default_rng(seed)
    mcap = np.concatenate([np.full(n, float(b)) + rng.uniform(0, 0.5, n) for b, n in
                           enumerate(per_tercile)])  # fmt: skip
    spread = np.concatenate([np.full(n, 1.0 + 3 * b) for b, n in enumerate(per_tercile)])
    return rng.normal(0, 1, len(mcap)) * spread, mcap


def test_each_tercile_with_enough_rows_has_its_own_quantiles():
    residuals, mcap = tercile_panel()
    cal = intervals.fit(residuals, mcap)
    assert cal["n_by_tercile"] == [200, 200, 200]
    assert cal["mcap_edges"] == pytest.approx(np.quantile(mcap, [1 / 3, 2 / 3]).tolist())
    for b in range(3):
        own = intervals.fit(residuals[(mcap >= b) & (mcap < b + 1)], np.zeros(200))
        assert cal["by_tercile"][b] == own["overall"]
    assert "scaled" not in cal["method"] and "scale_feature" not in cal


def test_a_tercile_short_of_the_minimum_uses_all_residuals():
    residuals, mcap = tercile_panel((199, 199, 199))
    cal = intervals.fit(residuals, mcap)
    assert cal["n_by_tercile"] == [199, 199, 199]
    assert cal["by_tercile"] == [cal["overall"]] * 3


def test_without_any_market_cap_every_row_uses_all_residuals():
    residuals = np.arange(1.0, 100.0)
    cal = intervals.fit(residuals, np.full(99, np.nan), nominal=0.5)
    assert cal["mcap_edges"] == [] and cal["n_by_tercile"] == [0, 0, 0]
    assert cal["by_tercile"] == [[25.0, 75.0]] * 3
    low, high = intervals.bounds([0.0, 1.0], [5.0, np.nan], cal)
    assert low.tolist() == [25.0, 26.0] and high.tolist() == [75.0, 76.0]


def test_residuals_are_scaled_by_the_rows_difficulty():
    rng = np.random.default_rng(1)
    scale = rng.uniform(0.5, 2.0, 300)
    residuals = rng.normal(0, 1, 300) * scale
    cal = intervals.fit(residuals, np.zeros(300), scale=scale)
    assert cal["scale_feature"] == intervals.SCALE_FEATURE
    assert cal["scale_floor"] == pytest.approx(np.quantile(scale, 0.05))
    assert cal["scale_fill"] == pytest.approx(np.median(scale))
    assert cal["method"].endswith(f", residuals scaled by {intervals.SCALE_FEATURE}")
    plain = intervals.fit(residuals / scale, np.zeros(300))
    assert cal["overall"] == pytest.approx(plain["overall"])


def test_tiny_and_missing_scales_are_raised_to_the_floor_and_filled():
    scale = np.array([np.nan, 0.0, -1.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    cal = intervals.fit(np.ones(8), np.zeros(8), scale=scale)
    floor, fill = cal["scale_floor"], cal["scale_fill"]
    assert floor == pytest.approx(np.quantile([1, 2, 3, 4, 5], 0.05)) and fill == 3.0
    low, high = intervals.bounds(np.zeros(4), np.zeros(4), cal, scale=[np.nan, 0.0, 10.0, 2.0])
    q_low, q_high = cal["overall"]
    np.testing.assert_allclose(high, [q_high * fill, q_high * floor, q_high * 10, q_high * 2])
    np.testing.assert_allclose(low, [q_low * fill, q_low * floor, q_low * 10, q_low * 2])


def test_no_usable_scale_is_refused():
    with pytest.raises(ValueError, match=r"no calibration row has a positive finite .* \(2 rows\)"):
        intervals.fit([1.0, 2.0], [0.0, 0.0], scale=[0.0, np.nan])


def test_a_scaled_calibration_needs_the_scales():
    cal = intervals.fit(np.ones(5), np.zeros(5), scale=np.ones(5))
    with pytest.raises(ValueError, match=f"scaled by {intervals.SCALE_FEATURE}: pass the rows"):
        intervals.bounds([0.0], [0.0], cal)


def test_bounds_use_each_rows_tercile_and_all_residuals_without_a_cap():
    cal = {
        "mcap_edges": [1.0, 2.0],
        "by_tercile": [[-1.0, 1.0], [-2.0, 2.0], [-3.0, 3.0]],
        "overall": [-9.0, 9.0],
    }
    low, high = intervals.bounds([10.0, 10.0, 10.0, 10.0], [0.0, 1.5, 5.0, np.nan], cal)
    assert low.tolist() == [9.0, 8.0, 7.0, 1.0]
    assert high.tolist() == [11.0, 12.0, 13.0, 19.0]
    X = pd.DataFrame({intervals.BUCKET_FEATURE: [0.0, 5.0]})
    low, high = intervals.bounds_for(np.array([0.0, 0.0]), X, cal)
    assert low.tolist() == [-1.0, -3.0] and high.tolist() == [1.0, 3.0]


def test_bounds_for_reads_the_scale_column_of_a_scaled_calibration():
    cal = intervals.fit(np.ones(10), np.zeros(10), scale=np.full(10, 2.0))
    X = pd.DataFrame({intervals.BUCKET_FEATURE: [0.0], intervals.SCALE_FEATURE: [4.0]})
    low, high = intervals.bounds_for(np.array([1.0]), X, cal)
    assert high.tolist() == [1.0 + cal["overall"][1] * 4.0]


def test_coverage_counts_the_bounds_as_inside():
    cov = intervals.coverage(
        [0.0, 1.0, 2.0, 5.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.5, 1.5, 1.5, 0.5],
        [1.0, 2.0],
    )  # fmt: skip
    assert cov["overall"] == 0.5
    assert cov["by_tercile"] == [0.5, 0.5, None]
    assert cov["mean_width"] == 1.0
    assert intervals.coverage([1.0], [0.5], [3.0], [0.0], [])["mean_width"] == 2.5
    none = intervals.coverage([], [], [], [], [1.0, 2.0])
    assert none == {"overall": None, "by_tercile": [None, None, None], "mean_width": None}
    flat = intervals.coverage([0.5, 3.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [])
    assert flat["overall"] == 0.5 and flat["by_tercile"] == [None, None, None]


def test_six_residuals_at_half_coverage():
    cal = intervals.fit(np.arange(1.0, 7.0), np.zeros(6), nominal=0.5)
    assert cal["overall"] == [1.0, 6.0]  # the floor(7 / 4) = 1st and ceil(21 / 4) = 6th


def test_the_method_says_what_was_done():
    cal = intervals.fit(np.ones(5), np.zeros(5))
    assert cal["method"] == "split-conformal, newest CV folds, by market-cap tercile"
    scaled = intervals.fit(np.ones(5), np.zeros(5), scale=np.ones(5))
    assert scaled["method"] == (
        "split-conformal, newest CV folds, by market-cap tercile, residuals scaled by "
        + intervals.SCALE_FEATURE
    )


def test_missing_values_as_none_are_missing():
    # Values read back from JSON (a stored calibration, a request) carry None for NaN.
    cal = intervals.fit(
        [1.0, None, 2.0, 3.0], [0.0, 1.0, None, 2.0], scale=[1.0, 1.0, None, 1.0], nominal=0.5
    )
    assert cal["n_calibration"] == 3
    assert cal["scale_fill"] == 1.0
    assert intervals.bucket_of([1.5, None], [1.0, 2.0]).tolist() == [1, -1]
    stored = {"mcap_edges": [1.0, 2.0], "by_tercile": [[None, None]] * 3, "overall": [-1.0, 1.0]}
    low, high = intervals.bounds([0.0, 0.0], [0.5, None], stored)
    assert np.isnan(low[0]) and low[1] == -1.0 and high[1] == 1.0
    scaled = dict(stored, scale_feature="s", scale_floor=0.5, scale_fill=2.0)
    low, high = intervals.bounds([0.0], [None], scaled, scale=[None])
    assert low.tolist() == [-2.0] and high.tolist() == [2.0]
    cov = intervals.coverage([0.5, None], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [])
    assert cov["overall"] == 0.5
