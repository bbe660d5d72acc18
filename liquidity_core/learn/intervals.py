"""Forecast intervals calibrated on time-ordered, out-of-sample residuals.

The spread of a forest's trees is the uncertainty of the *mean*, not of the outcome: on
real monthly data the trees' 10th-90th percentile held the realized value only 55% of the
time. The interval served instead is split-conformal:

1. The tuned forest's fold model, fitted by the search on the training side of the last
   cross-validation fold, predicts that fold's validation snapshots, which it has not
   seen (``training.challenger.calibrate_intervals``). Those are the
   calibration rows: time-ordered, out of sample, and never the holdout. When the last
   fold holds fewer than :data:`MIN_CALIBRATION_ROWS` rows (a short monthly panel), the
   folds before it are added the same way, newest first, until it does: a 10% tail
   quantile from 150 rows is mostly noise.
2. Each residual ``actual - forecast`` there is divided by the row's *difficulty*: the
   coin's recent mean absolute change of log turnover (:data:`SCALE_FEATURE`, known at
   the snapshot, so no leak). This is normalized (locally weighted) split conformal: a
   coin whose turnover has been jumping gets a wider interval than a calm one, and when
   the whole market turns volatile the intervals widen with it instead of keeping the
   width of a calmer calibration period. (On the daily dev history the plain residual
   quantiles of the last fold held 64% of the next 180 days; scaled, 80%.)
3. The scaled residuals are split by market-cap tercile (Mondrian conformal: the
   largest coins move less than the smallest, so one width for all would over-cover one
   end and under-cover the other). Per tercile the interval is
   ``forecast + scale * [q_low, q_high]``, the scaled-residual quantiles at
   ``(1 - nominal) / 2`` and ``(1 + nominal) / 2`` with the finite-sample correction of
   split conformal.
4. The holdout then measures the coverage (overall and per tercile), on rows the
   calibration never saw; it is recorded with the model version beside the calibration,
   so a served interval always means what its model measured.

Rows with no market cap (NaN) use the quantiles of all calibration residuals. A scale
below the calibration rows' 5th percentile is raised to it (a coin that has not moved for
a week is not certain to stay put), and a missing one (a coin's first snapshot) takes
their median. Calibrations stored before the scaling have no ``scale_feature`` and are
applied unscaled, as they were measured.

This is a few lines of NumPy rather than a library (MAPIE): the calibration has to be
stored in ``model_versions`` beside the model, applied on the lean request path without
wrapping the published pipeline, and split by tercile; see docs/model.md, "Forecast intervals".
"""

from __future__ import annotations

import math

import numpy as np

from liquidity_core.features.build import ABS_WINDOW

#: The interval's nominal coverage.
NOMINAL = 0.80
#: Feature that picks a row's market-cap tercile: log market cap relative to the snapshot's
#: market (cross-sectional, so terciles do not drift as the whole market grows).
BUCKET_FEATURE = "log_mcap_rel"
#: Feature that measures a row's difficulty (see step 2): the coin's mean absolute change
#: of log turnover over its last snapshots.
SCALE_FEATURE = f"abs_log_turnover_diff_mean_{ABS_WINDOW}"
#: Scales below this quantile of the calibration rows' scales are raised to it.
SCALE_FLOOR_QUANTILE = 0.05
#: Fewer calibration rows than this in a tercile: that tercile uses all residuals.
MIN_BUCKET_ROWS = 200
#: The calibration reaches back over earlier CV folds until it holds this many rows.
MIN_CALIBRATION_ROWS = 1000


def _quantiles(residuals: np.ndarray, nominal: float) -> tuple[float, float]:
    """Split-conformal lower and upper residual quantiles for coverage ``nominal``."""
    r = np.sort(residuals[np.isfinite(residuals)])
    n = len(r)
    if n == 0:
        return float("nan"), float("nan")
    tail = (1.0 - nominal) / 2.0
    # The k-th smallest of n residuals bounds a new one with probability k / (n + 1).
    hi = min(n, math.ceil((n + 1) * (1.0 - tail)))
    lo = max(1, math.floor((n + 1) * tail))
    return float(r[lo - 1]), float(r[hi - 1])


def bucket_of(log_mcap, edges) -> np.ndarray:
    """Tercile (0, 1, 2) of each log market cap; -1 where it is not finite."""
    x = np.asarray(log_mcap, dtype=float)
    out = np.searchsorted(np.asarray(edges, dtype=float), x, side="right")
    return np.where(np.isfinite(x), out, -1)


def _scales(scale, floor: float, fill: float) -> np.ndarray:
    s = np.asarray(scale, dtype=float)
    return np.where(np.isfinite(s), np.maximum(s, floor), fill)


def fit(residuals, log_mcap, *, scale=None, nominal: float = NOMINAL) -> dict:
    """The calibration: tercile edges and (scaled) residual quantiles per tercile and overall.

    Parameters
    ----------
    residuals : array-like
        ``actual - forecast`` on out-of-sample calibration rows.
    log_mcap : array-like
        The same rows' log market cap.
    scale : array-like or None, default=None
        The same rows' :data:`SCALE_FEATURE`; None calibrates unscaled residuals.
    nominal : float, default=NOMINAL

    Returns
    -------
    dict
        JSON-able: ``method``, ``nominal``, ``mcap_edges``, ``overall`` ``[low, high]``,
        ``by_tercile`` (three ``[low, high]``), ``n_calibration`` and ``n_by_tercile``;
        with ``scale``, also ``scale_feature``, ``scale_floor`` and ``scale_fill``, and the
        quantiles are of ``residual / scale``.
    """
    r = np.asarray(residuals, dtype=float)
    x = np.asarray(log_mcap, dtype=float)
    scaling = {}
    if scale is not None:
        s = np.asarray(scale, dtype=float)
        ok = np.isfinite(s) & (s > 0)
        if not ok.any():
            raise ValueError(
                f"no calibration row has a positive finite {SCALE_FEATURE} "
                f"({len(s)} rows): the interval cannot be scaled"
            )
        floor = float(np.quantile(s[ok], SCALE_FLOOR_QUANTILE))
        fill = float(np.median(s[ok]))
        scaling = {"scale_feature": SCALE_FEATURE, "scale_floor": floor, "scale_fill": fill}
        r = r / _scales(s, floor, fill)
    finite = np.isfinite(x)
    edges = [float(e) for e in np.quantile(x[finite], [1 / 3, 2 / 3])] if finite.any() else []
    overall = _quantiles(r, nominal)
    buckets = bucket_of(x, edges) if edges else np.full(len(r), -1)
    by_tercile, counts = [], []
    for b in range(3):
        in_b = r[buckets == b]
        counts.append(int(np.isfinite(in_b).sum()))
        enough = counts[-1] >= MIN_BUCKET_ROWS
        by_tercile.append(list(_quantiles(in_b, nominal)) if enough else list(overall))
    return {
        "method": "split-conformal, newest CV folds, by market-cap tercile"
        + (f", residuals scaled by {SCALE_FEATURE}" if scaling else ""),
        "nominal": nominal,
        "mcap_edges": edges,
        "overall": list(overall),
        "by_tercile": by_tercile,
        "n_calibration": int(np.isfinite(r).sum()),
        "n_by_tercile": counts,
        **scaling,
    }


def bounds(point, log_mcap, calibration: dict, scale=None) -> tuple[np.ndarray, np.ndarray]:
    """Interval ``(low, high)`` around forecasts ``point`` (log turnover).

    ``scale`` is the rows' :data:`SCALE_FEATURE`, needed when the calibration is scaled.
    """
    point = np.asarray(point, dtype=float)
    q = np.asarray([*calibration["by_tercile"], calibration["overall"]], dtype=float)
    edges = calibration["mcap_edges"]
    b = bucket_of(log_mcap, edges) if edges else np.full(len(point), -1)
    rows = q[np.where(b >= 0, b, 3)]
    if "scale_feature" in calibration:
        if scale is None:
            raise ValueError(
                f"this calibration is scaled by {calibration['scale_feature']}: "
                "pass the rows' values as scale"
            )
        s = _scales(scale, calibration["scale_floor"], calibration["scale_fill"])
        return point + rows[:, 0] * s, point + rows[:, 1] * s
    return point + rows[:, 0], point + rows[:, 1]


def bounds_for(point, X, calibration: dict) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bounds` for feature rows ``X`` (a DataFrame with the model's features, or a
    mapping of them to arrays)."""
    scale = np.asarray(X[calibration["scale_feature"]]) if "scale_feature" in calibration else None
    return bounds(point, np.asarray(X[BUCKET_FEATURE]), calibration, scale)


def coverage(actual, low, high, log_mcap, edges) -> dict:
    """Share of ``actual`` inside ``[low, high]``: overall and per market-cap tercile."""
    y = np.asarray(actual, dtype=float)
    inside = (y >= np.asarray(low)) & (y <= np.asarray(high))
    b = bucket_of(log_mcap, edges) if edges else np.full(len(y), -1)
    by = [float(inside[b == k].mean()) if (b == k).any() else None for k in range(3)]
    return {
        "overall": float(inside.mean()) if len(y) else None,
        "by_tercile": by,
        "mean_width": float(np.mean(np.asarray(high) - np.asarray(low))) if len(y) else None,
    }
