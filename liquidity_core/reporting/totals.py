"""Exact totals of the stored snapshots for the report, aggregated in SQL.

The report (:mod:`liquidity_core.reporting.report`) never loads every stored row: counts, missing
values and ranges come from here, over every row; its medians, distributions and
correlations use the newest snapshots up to :data:`EDA_ROWS` rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liquidity_core.store import db
from liquidity_core.store.schema import MEASURES

NUMERIC = list(MEASURES)

#: The newest snapshots up to this many rows give the medians, distributions and
#: correlations; counts and ranges come from SQL over every row (:func:`stored_totals`).
EDA_ROWS = 500_000


def stored_totals(engine) -> dict:
    """Exact totals over every stored snapshot, aggregated in SQL.

    Returns
    -------
    dict
        ``times`` (DatetimeIndex), ``rows_at`` (rows per time), ``n_rows``, ``n_coins``,
        ``n_snapshots``, ``first``, ``last`` and ``columns``: column -> (values present,
        min, max) for the numeric columns and turnover.
    """
    with db.transaction(engine, readonly=True) as conn:
        counts = conn.execute(db.query("report_time_counts")).fetchall()
        stats = conn.execute(db.query("report_column_stats")).mappings().one()
    times = pd.DatetimeIndex(
        pd.to_datetime([r[0] for r in counts], utc=True, format="ISO8601")
    ).as_unit("us")
    rows_at = np.array([int(r[1]) for r in counts], dtype=np.int64)
    return {
        "times": times,
        "rows_at": rows_at,
        "n_rows": int(rows_at.sum()),
        "n_coins": int(stats["n_coins"] or 0),
        "n_snapshots": len(times),
        "first": times[0] if len(times) else None,
        "last": times[-1] if len(times) else None,
        "columns": {
            c: (int(stats[f"n_{c}"]), stats[f"min_{c}"], stats[f"max_{c}"])
            for c in [*NUMERIC, "turnover"]
        },
    }
