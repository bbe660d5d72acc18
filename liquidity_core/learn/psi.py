"""Population stability index (PSI): how far a sample's distribution is from a reference.

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

The bins are the quintiles of the reference values plus one bin for missing values;
shares are floored at :data:`EPSILON` so an empty bin stays finite. Monitoring measures
each forecast snapshot against the training window with it
(:mod:`liquidity_core.monitoring.drift`); training computes the reference while the rows
are at hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liquidity_core.features.build import MARKET_FEATURES

#: Floor of a bin's share.
EPSILON = 1e-4
#: Quantile bins of the reference.
BINS = 5
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


def reference_of_rows(X: pd.DataFrame, feature_names) -> dict:
    """The reference (bin edges and shares per feature) of the training rows ``X``."""
    return {
        "rows": int(len(X)),
        "features": {
            f: reference_of(X[f])
            for f in feature_names
            if f in X.columns and f not in SNAPSHOT_CONSTANT
        },
    }
