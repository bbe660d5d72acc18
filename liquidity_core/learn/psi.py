"""Population stability index (PSI): how far a sample's distribution is from a reference.

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

The bins are the quintiles of the reference values plus one bin for missing values;
shares are floored at :data:`EPSILON` so an empty bin stays finite. Monitoring measures
each forecast snapshot against the training window with it
(:mod:`liquidity_core.monitoring.drift`); training computes the reference while the rows
are at hand.

What PSI a snapshot of an unchanged market reaches is measured, not assumed: given the
rows' snapshot-time codes, the reference also holds each feature's *null*, the
:data:`NULL_QUANTILE` quantile of the PSI of every snapshot of the training window
against the pooled window (:func:`null_of`). It holds the sampling noise of one
snapshot's rows and the moves every coin shares on a day, both of which a single
snapshot shows and the pooled window averages out. A check flags a feature beyond
:func:`threshold_of`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liquidity_core.features.build import MARKET_FEATURES

#: Floor of a bin's share.
EPSILON = 1e-4
#: Quantile bins of the reference.
BINS = 5
#: Quantile of the within-window per-snapshot PSI a check must exceed.
NULL_QUANTILE = 0.99
#: Factor on the null: with a few dozen snapshots in a window, its 99th percentile is
#: about their largest PSI, which a new snapshot of the same market exceeds with chance
#: ``1 / (snapshots + 1)``; the margin takes that down to the stated false-alarm rate.
NULL_MARGIN = 1.5
#: Snapshots where more than this share of a feature is missing (its warm-up: no history
#: yet) are left out of its null; they never recur after the window.
WARMUP_MISSING = 0.5
#: Features left out: the same for every coin at a snapshot, or growing with time.
SNAPSHOT_CONSTANT = frozenset({*MARKET_FEATURES, "gap_days", "target_weekday", "snapshots_seen"})


def reference_of(values) -> dict:
    """Bin edges (inner deciles) and shares of one feature's training-window values."""
    x = np.asarray(values, dtype=float)
    finite = x[np.isfinite(x)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1])) if len(finite) else []
    return {"edges": [float(e) for e in edges], "shares": shares_of(x, edges)}


def shares_of(values, edges) -> list[float]:
    """Share of ``values`` in each bin of ``edges`` (``len(edges) + 1`` bins), then the
    share of missing values."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return [0.0] * (len(edges) + 2)
    finite = np.isfinite(x)
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), x[finite], side="right"),
        minlength=len(edges) + 1,
    )
    return [float(c) / n for c in counts] + [float((~finite).sum()) / n]


def psi(expected, actual) -> float:
    """Population stability index between two share vectors of the same bins."""
    e = np.maximum(np.asarray(expected, dtype=float), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=float), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def snapshot_psis(values, times, ref: dict) -> tuple[np.ndarray, np.ndarray]:
    """PSI against ``ref`` of each snapshot's values, and its number of rows.

    ``times`` are the rows' snapshot-time codes. Snapshots where more than
    :data:`WARMUP_MISSING` of the values are missing (the feature's warm-up) are left out.
    """
    x = np.asarray(values, dtype=float)
    t = np.asarray(times)
    order = np.argsort(t, kind="stable")
    bounds = np.flatnonzero(np.diff(t[order])) + 1
    psis, rows = [], []
    for idx in np.split(order, bounds) if len(t) else []:
        v = x[idx]
        if np.mean(~np.isfinite(v)) > WARMUP_MISSING:
            continue
        psis.append(psi(ref["shares"], shares_of(v, ref["edges"])))
        rows.append(len(idx))
    return np.asarray(psis, dtype=float), np.asarray(rows, dtype=int)


def null_of(values, times, ref: dict, q: float = NULL_QUANTILE) -> dict | None:
    """The null of one feature: the ``q`` quantile of its per-snapshot PSI within the
    window (:func:`snapshot_psis`), the number of snapshots and their median rows. None
    when no snapshot counts."""
    psis, rows = snapshot_psis(values, times, ref)
    if not len(psis):
        return None
    return {
        "q": q,
        "psi": float(np.quantile(psis, q)),
        "snapshots": int(len(psis)),
        "rows": float(np.median(rows)),
    }


def threshold_of(ref: dict, n_rows: int, floor: float) -> float:
    """The PSI beyond which a snapshot of ``n_rows`` rows is flagged for a feature.

    ``max(NULL_MARGIN * null, floor)``, the null scaled by ``null rows / n_rows`` when the
    snapshot has fewer rows than the window's snapshots (the sampling part of a PSI grows
    as ``1 / rows``). A reference without a null (stored before it existed) gives
    ``floor``, the fixed rule.
    """
    null = ref.get("null")
    if not null:
        return float(floor)
    scale = max(1.0, null["rows"] / n_rows) if n_rows > 0 else 1.0
    return float(max(NULL_MARGIN * null["psi"] * scale, floor))


def reference_of_rows(X: pd.DataFrame, feature_names, times=None) -> dict:
    """The reference (bin edges and shares per feature) of the training rows ``X``;
    with ``times``, the rows' snapshot-time codes, each feature's null too
    (:func:`null_of`)."""
    features = {}
    for f in feature_names:
        if f not in X.columns or f in SNAPSHOT_CONSTANT:
            continue
        ref = reference_of(X[f])
        if times is not None:
            null = null_of(X[f], times, ref)
            if null is not None:
                ref["null"] = null
        features[f] = ref
    return {"rows": int(len(X)), "features": features}
