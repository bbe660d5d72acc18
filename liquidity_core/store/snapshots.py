"""Reading stored market snapshots back as a pandas panel."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from liquidity_core.errors import InputError
from liquidity_core.store import db, schema

#: Columns of :func:`load_snapshots` before any ``x_*`` extras.
SNAPSHOT_COLUMNS = schema.SNAPSHOT_COLUMNS
_FLOATS = schema.MEASURES

_view = schema.coin_snapshots
#: Stored snapshots as the code reads them: coins followed through renames, with extras.
_SNAPSHOTS = sa.select(*(_view.c[c] for c in (*SNAPSHOT_COLUMNS, "extras")))
_ORDER = (_view.c.snapshot_ts, _view.c.coin_id)
_times = schema.market_snapshots.c.snapshot_ts
#: What the stored data's version is: ledger rows and the newest snapshot time.
DATA_VERSION = sa.select(
    sa.select(sa.func.count()).select_from(schema.ingest_files).scalar_subquery().label("files"),
    sa.select(sa.func.max(_times)).scalar_subquery().label("newest"),
)


def _distinct_times(*, newest: int | None = None):
    """Distinct stored snapshot times, read off the primary key's index one time at a time
    (a loose index scan, as a recursive CTE): each step asks the index for the next time
    after the last one found, so a panel of T times costs T index probes instead of a
    pass over every stored row. ``newest``: only the newest that many, newest first;
    otherwise every time, oldest first.

    At 1M rows (1,000 times) it took 15-31 ms on PostgreSQL where ``SELECT DISTINCT``
    took 118-354 ms, and the gap grows with the rows per time.
    """
    s = schema.market_snapshots
    nxt = s.alias("next_time")
    if newest is None:
        start, after, order = sa.func.min, nxt.c.snapshot_ts.__gt__, sa.asc
    else:
        start, after, order = sa.func.max, nxt.c.snapshot_ts.__lt__, sa.desc
    found = sa.select(start(s.c.snapshot_ts).label("ts"), sa.literal(1).label("n")).cte(
        "times", recursive=True
    )
    following = sa.select(start(nxt.c.snapshot_ts)).where(after(found.c.ts)).scalar_subquery()
    step = sa.select(following, found.c.n + 1).where(found.c.ts.is_not(None))
    if newest is not None:
        step = step.where(found.c.n < newest)
    times = found.union_all(step)
    return (
        sa.select(sa.type_coerce(times.c.ts, s.c.snapshot_ts.type).label("snapshot_ts"))
        .where(times.c.ts.is_not(None))
        .order_by(order(times.c.ts))
    )


#: Every stored snapshot time, oldest first.
SNAPSHOT_TIMES = _distinct_times()
#: Stored snapshots (as :data:`_SNAPSHOTS`) from ``:since`` to ``:until``, inclusive.
SNAPSHOTS_BETWEEN = _SNAPSHOTS.where(
    _view.c.snapshot_ts >= sa.bindparam("since"), _view.c.snapshot_ts <= sa.bindparam("until")
).order_by(*_ORDER)


def recent_snapshots_query(keep: int):
    """The stored snapshots at the newest ``keep`` snapshot times (as :data:`_SNAPSHOTS`)."""
    recent = _distinct_times(newest=keep).subquery()
    oldest = sa.select(sa.func.min(recent.c.snapshot_ts)).scalar_subquery()
    return _SNAPSHOTS.where(_view.c.snapshot_ts >= oldest).order_by(*_ORDER)


def to_utc(value, *, name: str = "time") -> pd.Timestamp:
    """A UTC timestamp from a string, datetime or Timestamp (naive means UTC).

    Raises
    ------
    InputError
        When ``value`` is not a time.
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(f"{name}={value!r} is not a time (expected ISO 8601)") from None
    if ts is pd.NaT:
        raise InputError(f"{name}={value!r} is not a time (expected ISO 8601)")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def utc_ns(times) -> np.ndarray:
    """UTC times as int64 nanoseconds since the epoch: cheap to compare and sort
    (``to_numpy()`` of a time-zone-aware column makes one Python object per row)."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def format_ts(ts: pd.Timestamp) -> str:
    """The stored text form of a time: ``YYYY-MM-DDTHH:MM:SS+00:00``."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def stored_time(ts: pd.Timestamp, dialect: str):
    """A time as the store keeps and compares it: ISO text on SQLite, a datetime elsewhere."""
    return format_ts(ts) if dialect == "sqlite" else ts.to_pydatetime()


def load_snapshots(
    engine: Engine,
    *,
    until=None,
    coin_ids=None,
    symbols=None,
) -> pd.DataFrame:
    """Load stored snapshots as a panel.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        A migrated liquidity database.
    until : str or datetime-like, default=None
        Only snapshots at or before this time (naive = UTC).
    coin_ids : iterable of str, default=None
        Only these coins (``coin_id`` slugs).
    symbols : iterable of str, default=None
        Only these symbols (case-insensitive).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SNAPSHOT_COLUMNS` (``snapshot_ts`` as UTC datetimes, changes as
        fractions) plus one float column ``x_<name>`` per extra numeric column found,
        sorted by ``(snapshot_ts, coin_id)``.

    Raises
    ------
    InputError
        When ``until`` is not a time.
    DatabaseUnavailable
        When the database cannot be reached.
    """
    stmt = _SNAPSHOTS.order_by(*_ORDER)
    if until is not None:
        stmt = stmt.where(_view.c.snapshot_ts <= format_ts(to_utc(until, name="until")))
    if coin_ids is not None:
        stmt = stmt.where(_view.c.coin_id.in_([str(c) for c in coin_ids]))
    if symbols is not None:
        stmt = stmt.where(_view.c.symbol.in_([str(s).strip().upper() for s in symbols]))
    with db.transaction(engine) as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    return panel_from_rows(frame)


def panel_from_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed, sorted panel (the shape :func:`load_snapshots` returns) from raw rows of
    ``market_snapshots``: UTC times, float columns, ``extras`` JSON spread to ``x_*``."""
    extras = frame.pop("extras") if "extras" in frame else pd.Series(dtype=object)
    frame["snapshot_ts"] = pd.to_datetime(frame["snapshot_ts"], utc=True, format="ISO8601")
    for col in _FLOATS:
        frame[col] = pd.to_numeric(frame[col]).astype(float)
    for col in ("coin_id", "coin_name", "symbol"):
        frame[col] = frame[col].astype(str)
    given = extras.dropna()
    given = given[given != ""]
    if len(given):
        parsed = pd.DataFrame.from_records([json.loads(v) for v in given], index=given.index)
        parsed = parsed.reindex(frame.index).astype(float).sort_index(axis=1)
        for col in parsed.columns:
            frame[f"x_{col}"] = parsed[col].to_numpy(dtype=float, na_value=np.nan)
    frame = frame.sort_values(["snapshot_ts", "coin_id"], kind="stable")
    return frame.reset_index(drop=True)
