"""Per-coin windows and per-time order statistics on sorted panel arrays.

The NumPy pieces of :mod:`liquidity_core.features.build`. Rows are sorted by coin, then
time; ``t`` is each row's integer code on the panel's time axis (0 = the oldest snapshot
time). A window of ``w`` is bounded by snapshot time, not by row count: it holds the
coin's rows at the last ``w`` snapshot times of the panel, the row's own included, so a
coin missing from some snapshots has fewer rows in it. Prediction, which reads only the
newest snapshot times, then computes exactly what training did. Each function computes
exactly what its per-coin-loop counterpart would (``test_features_paths.py``), in a number
of NumPy calls that does not grow with the panel, so request-sized panels pay little
per-call overhead.
"""

from __future__ import annotations

import numpy as np

#: Longest window :func:`window_start` supports, in snapshot times.
MAX_WINDOW = 1 << 20


def coin_time_key(coin_code: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A sorted int64 key of (coin, time code) for rows sorted by coin, then time, spaced
    so that a window's time range (up to :data:`MAX_WINDOW`) never reaches into the
    previous coin's rows."""
    span = int(t.max()) + 1 if len(t) else 1
    return coin_code.astype(np.int64) * (span + MAX_WINDOW) + t


def window_start(key: np.ndarray, at: np.ndarray, window: int) -> np.ndarray:
    """Index of the first row of each ``at`` row's window: the coin's oldest row at one
    of the last ``window`` snapshot times (:func:`coin_time_key` gives ``key``)."""
    return np.searchsorted(key, key[at] - (window - 1), side="left")


def prefix_sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The running sum, sum of squares and count of the finite ``values``, each after a
    leading 0: what :func:`window_sums` takes its windows of ``values`` from, computed
    once for several windows of the same values."""
    finite = np.isfinite(values)
    v = np.where(finite, values, 0.0)
    zero = np.zeros(1)
    cs = np.concatenate([zero, np.cumsum(v)])
    cs2 = np.concatenate([zero, np.cumsum(v * v)])
    cn = np.concatenate([zero, np.cumsum(finite)])
    return cs, cs2, cn


def window_sums(values: np.ndarray, key: np.ndarray, window: int, at: np.ndarray, prefix=None):
    """Sum, sum of squares and count of the finite values in each ``at`` row's window of
    ``window`` snapshot times (the row itself included); ``prefix`` is
    :func:`prefix_sums` of ``values``, when the caller has it already."""
    cs, cs2, cn = prefix_sums(values) if prefix is None else prefix
    lo = window_start(key, at, window)
    hi = at + 1
    return cs[hi] - cs[lo], cs2[hi] - cs2[lo], cn[hi] - cn[lo]


def ewm_windows(values: np.ndarray, key: np.ndarray, halflives, window: int, at: np.ndarray):
    """Exponentially weighted means of the finite values in each ``at`` row's window of
    ``window`` snapshot times (weight ``0.5 ** (lag / halflife)``, the lag in snapshot
    times, renormalized): one array per half-life.

    Each weighted sum adds the coin's rows in order, newest first. A request-sized
    selection gathers them once into a (rows x depth) matrix and sums along it (a
    cumulative sum, whose last column is that sequential sum): a few dozen NumPy calls
    instead of a few hundred. A large one (training) walks the rows back, one vector
    operation per step over all rows, and needs no matrix. Both add the same numbers in
    the same order, so the result does not depend on the path.

    A lag is a whole number of snapshot times below ``window``, so each half-life's
    weights are computed once, for every lag, and looked up: a power per row and lag
    was a third of a 10M-row nightly's feature time.
    """
    n = len(at)
    lo = window_start(key, at, window)
    depth = int((at - lo).max()) + 1 if n else 0
    num = [np.zeros(n) for _ in halflives]
    den = [np.zeros(n) for _ in halflives]
    lags = np.arange(window, dtype=float)
    # By lag, one array per half-life; a last 0 for the rows out of the window or missing.
    weight_of = [np.append(0.5 ** (lags / h), 0.0) for h in halflives]
    if depth and n * depth <= EWM_MATRIX_CELLS:
        back = np.arange(depth)
        has = (at - lo)[:, None] >= back[None, :]
        rows = np.where(has, at[:, None] - back[None, :], at[:, None])
        ok = has & np.isfinite(values[rows])
        lag = np.where(ok, key[at][:, None] - key[rows], window)
        lagged = np.where(ok, values[rows], 0.0)
        for i, weights in enumerate(weight_of):
            w = weights[lag]
            num[i] = np.cumsum(lagged * w, axis=1)[:, -1]
            den[i] = np.cumsum(w, axis=1)[:, -1]
    else:
        for k in range(depth):
            has = at - lo >= k
            rows = np.where(has, at - k, at)
            ok = has & np.isfinite(values[rows])
            lag = np.where(ok, key[at] - key[rows], window)
            lagged = np.where(ok, values[rows], 0.0)
            for i, weights in enumerate(weight_of):
                w = weights[lag]
                num[i] += lagged * w
                den[i] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return [
            np.where(de > 0, nu / np.where(de > 0, de, 1.0), np.nan)
            for nu, de in zip(num, den, strict=True)
        ]


#: Largest (rows x lags) matrix :func:`ewm_windows` gathers (512 KiB of float64): a
#: 1,000-row request at the full window, not a training panel.
EWM_MATRIX_CELLS = 1 << 16


def _runs(g: np.ndarray) -> np.ndarray:
    """Start flags of the runs of equal values of a sorted array."""
    new = np.ones(len(g), dtype=bool)
    new[1:] = g[1:] != g[:-1]
    return new


def order_by_time(values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """An order of the rows by time code, then value (equal values in any order).

    Two sorts instead of ``np.lexsort``: the values (an unstable sort), then the time
    codes (stable; a radix sort for codes that fit 16 bits); 5x faster on 40,000 rows."""
    order = np.argsort(values)
    codes = t[order]
    if len(codes) and codes.max() < 2**15:
        codes = codes.astype(np.int16)
    return order[np.argsort(codes, kind="stable")]


def by_time_median(values: np.ndarray, t: np.ndarray, n_times: int) -> np.ndarray:
    """Median of the finite values at each snapshot time (NaN where none); the mean of the
    two middle values for an even count, as pandas' ``groupby().median()``."""
    out = np.full(n_times, np.nan)
    ok = np.isfinite(values)
    if ok.any():
        v, g = values[ok], t[ok]
        order = order_by_time(v, g)
        v, g = v[order], g[order]
        starts = np.flatnonzero(_runs(g))
        counts = np.diff(np.append(starts, len(g)))
        lo, hi = v[starts + (counts - 1) // 2], v[starts + counts // 2]
        out[g[starts]] = np.where(counts % 2 == 1, lo, (lo + hi) / 2)
    return out


def rank_within_time(values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rank of each value among the rows of its snapshot time, largest first, ties sharing
    the lowest rank (pandas' ``rank(ascending=False, method="min")``); NaN stays NaN."""
    out = np.full(len(values), np.nan)
    idx = np.flatnonzero(~np.isnan(values))
    order = order_by_time(-values[idx], t[idx])
    v, g, idx = values[idx][order], t[idx][order], idx[order]
    i = np.arange(len(idx))
    new_group = _runs(g)
    new_value = new_group | _runs(v)
    group_start = np.maximum.accumulate(np.where(new_group, i, 0))
    first_equal = np.maximum.accumulate(np.where(new_value, i, 0))
    out[idx] = first_equal - group_start + 1
    return out
