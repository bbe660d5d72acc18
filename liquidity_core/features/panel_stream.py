"""The snapshot panel in time order, a chunk at a time, and features over a sliding window.

Training and the report read every stored snapshot, but no step needs them all in memory
at once:

- :func:`stored_chunks` streams ``coin_snapshots`` in ``(snapshot_ts, coin_id)`` order
  (PostgreSQL: ``COPY ... TO STDOUT`` parsed by pandas as it arrives; SQLite: a cursor
  read ``fetchmany`` at a time) and :func:`frame_chunks` cuts an in-memory panel the same
  way; both yield panels (:func:`~liquidity_core.store.snapshots.panel_from_rows` form)
  holding whole snapshot times, oldest first.
- :func:`scan` makes one pass over them for what the split needs: the snapshot times, the
  rows and the rows with a target at each time, and coins. It needs four columns only,
  which :func:`stored_chunks` reads alone when given ``columns=SCAN_COLUMNS``.
- :func:`fingerprinted` hashes the chunks of the pass that reads every column, as they
  go by, into the data fingerprint.
- :func:`windowed_features` runs :func:`~liquidity_core.features.build.build_features` on
  a sliding window: the rows of each new chunk plus the ``HISTORY_ROWS - 1`` snapshot
  times before it, and the next time for the target; features are computed for the new
  rows only (``rows=``), the older ones serving as their history. Every feature looks at most
  ``HISTORY_ROWS`` snapshots back, so a row's features are those prediction computes from
  the newest ``HISTORY_ROWS`` snapshot times (:mod:`.predict`), with one implementation.
  A panel that fits in one chunk is one window: exactly ``build_features(panel)``.

Memory is bounded by the chunk and the window (``HISTORY_ROWS`` times of every coin), not
by the number of snapshots.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from liquidity_core.features.build import HISTORY_ROWS, FeatureSet, build_features
from liquidity_core.features.series import log_turnover
from liquidity_core.store import db
from liquidity_core.store.snapshots import (
    SNAPSHOT_COLUMNS,
    format_ts,
    panel_from_rows,
    to_utc,
    utc_ns,
)

#: Rows read per chunk: the window holds this plus HISTORY_ROWS - 1 snapshot times.
CHUNK_ROWS = 500_000
_RAW_COLUMNS = [*SNAPSHOT_COLUMNS, "extras"]
#: The columns :func:`scan` reads: a row's coin and time and its log turnover's measures.
SCAN_COLUMNS = ("coin_id", "snapshot_ts", "volume_24h", "market_cap")


# --- reading ----------------------------------------------------------------------------


def stored_chunks(engine, *, until=None, since=None, chunk_rows: int = CHUNK_ROWS, columns=None):
    """Stored snapshots (``since <= snapshot_ts <= until``) as panels of whole times.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        A migrated liquidity database.
    until, since : str or datetime-like, default=None
        Time bounds (inclusive; naive = UTC); None = unbounded.
    chunk_rows : int, default=CHUNK_ROWS
        About how many rows each panel holds (a snapshot time is never split).
    columns : tuple of str, default=None
        ``SCAN_COLUMNS``: read those columns only (typed as in a panel, in time order but
        not sorted by coin within a time), what :func:`scan` needs; None: every column.

    Yields
    ------
    pandas.DataFrame
        As :func:`~liquidity_core.store.snapshots.load_snapshots` returns, one chunk of
        snapshot times at a time, oldest first.
    """
    params = {
        "until": None if until is None else format_ts(to_utc(until, name="until")),
        "since": None if since is None else format_ts(to_utc(since, name="since")),
    }
    if columns is None:
        query, names, typed = "model_panel_chunks", _RAW_COLUMNS, panel_from_rows
    elif tuple(columns) == SCAN_COLUMNS:
        query, names, typed = "model_panel_scan", list(SCAN_COLUMNS), _scan_from_rows
    else:
        raise ValueError(f"columns must be None or SCAN_COLUMNS {SCAN_COLUMNS}, not {columns!r}")
    if db.dialect_of(engine) == "postgresql":
        raw = _postgres_frames(engine, params, chunk_rows, query, names)
    else:
        raw = _cursor_frames(engine, params, chunk_rows, query, names)
    return _whole_times(typed(f) for f in raw)


def _scan_from_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Raw rows of ``model_panel_scan`` typed as in a panel (UTC times, float measures)."""
    frame["coin_id"] = frame["coin_id"].astype(str)
    frame["snapshot_ts"] = pd.to_datetime(frame["snapshot_ts"], utc=True, format="ISO8601")
    for col in ("volume_24h", "market_cap"):
        frame[col] = pd.to_numeric(frame[col]).astype(float)
    return frame


def _cursor_frames(
    engine, params: dict, chunk_rows: int, query: str, names: list[str]
) -> Iterator[pd.DataFrame]:
    with db.transaction(engine, readonly=True) as conn:
        result = conn.execute(db.query(query), params)
        while rows := result.fetchmany(chunk_rows):
            yield pd.DataFrame(rows, columns=names)


def _postgres_frames(
    engine, params: dict, chunk_rows: int, query: str, names: list[str]
) -> Iterator[pd.DataFrame]:
    """``COPY (query) TO STDOUT`` written by a thread into a pipe that pandas reads."""
    with db.transaction(engine, readonly=True) as conn:
        cursor = conn.connection.driver_connection.cursor()
        # COPY takes no parameters: the driver binds the values into the statement's text
        # (psycopg2's own quoting, as for any parameter); no value is formatted in here.
        select = db.query(query).text.replace(":until", "%(until)s").replace(":since", "%(since)s")
        copy_sql = cursor.mogrify(
            "COPY (" + select + ") TO STDOUT WITH (FORMAT csv)", params
        ).decode("utf-8")
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                with open(write_fd, "wb", buffering=1 << 20) as sink:
                    cursor.copy_expert(copy_sql, sink)
            except BaseException as exc:  # handed to the reader below
                failure.append(exc)

        writer = threading.Thread(target=produce, name="panel-copy", daemon=True)
        writer.start()
        try:
            with open(read_fd, "rb", buffering=1 << 20) as source:
                reader = pd.read_csv(
                    source,
                    header=None,
                    names=names,
                    dtype={
                        c: str for c in ("coin_id", "coin_name", "symbol", "extras") if c in names
                    },
                    keep_default_na=False,
                    na_values={c: [""] for c in names},
                    chunksize=chunk_rows,
                    engine="c",
                )
                yield from reader
        finally:
            writer.join()
            cursor.close()
        if failure:
            raise failure[0]


def frame_chunks(panel: pd.DataFrame, *, chunk_rows: int = CHUNK_ROWS):
    """An in-memory panel cut like :func:`stored_chunks` (sorted by time, then coin)."""
    ordered = panel.sort_values(["snapshot_ts", "coin_id"], kind="stable").reset_index(drop=True)
    return _whole_times(
        ordered.iloc[lo : lo + chunk_rows] for lo in range(0, len(ordered), chunk_rows)
    )


def _whole_times(frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Re-cut time-ordered frames so that no snapshot time spans two of them."""
    frames = iter(frames)
    carry = None
    current = next(frames, None)
    while current is not None:
        following = next(frames, None)
        frame = current if carry is None else pd.concat([carry, current], ignore_index=True)
        if following is None:
            if len(frame):
                yield frame.reset_index(drop=True)
            return
        carry = None
        if len(frame):
            ts = utc_ns(frame["snapshot_ts"])
            cut = int(np.searchsorted(ts, ts[-1], side="left"))
            carry = frame.iloc[cut:].reset_index(drop=True)
            if cut:
                yield frame.iloc[:cut].reset_index(drop=True)
        current = following


# --- one pass: times and targets; the fingerprint on the way ------------------------------


@dataclass
class PanelScan:
    """What one pass over the panel tells (see :func:`scan`).

    Attributes
    ----------
    times : pandas.DatetimeIndex
        The distinct snapshot times, oldest first (time code ``t`` = position).
    rows_at, targets_at : numpy.ndarray
        Rows at each time, and rows whose coin has a finite log turnover at the next
        time (the rows with a target, as :func:`build_features` defines it).
    n_rows, n_coins : int
    """

    times: pd.DatetimeIndex
    rows_at: np.ndarray
    targets_at: np.ndarray
    n_rows: int
    n_coins: int


def scan(chunks: Iterable[pd.DataFrame]) -> PanelScan:
    """One pass over chunks of whole snapshot times, oldest first (only
    :data:`SCAN_COLUMNS` are read); memory grows with the coins and times only."""
    coins = pd.Index([], dtype=object)
    last_t = np.empty(0, dtype=np.int64)  # time code of each coin's newest row
    times, rows_at, targets_at = [], [], []
    n_rows = 0
    for chunk in chunks:
        ids = chunk["coin_id"].to_numpy(dtype=object)
        code = coins.get_indexer(ids)
        if (code < 0).any():
            coins = coins.append(pd.Index(pd.unique(ids[code < 0])))
            last_t = np.concatenate([last_t, np.full(len(coins) - len(last_t), -2)])
            code = coins.get_indexer(ids)
        finite = np.isfinite(log_turnover(chunk["volume_24h"], chunk["market_cap"]))
        stamps = utc_ns(chunk["snapshot_ts"])
        starts = np.flatnonzero(np.r_[True, stamps[1:] != stamps[:-1]])
        for lo, hi in zip(starts, [*starts[1:], len(chunk)], strict=True):
            k = len(times)
            times.append(chunk["snapshot_ts"].iloc[lo])
            c = code[lo:hi]
            if k:
                targets_at[k - 1] = int(((last_t[c] == k - 1) & finite[lo:hi]).sum())
            last_t[c] = k
            rows_at.append(hi - lo)
            targets_at.append(0)
        n_rows += len(chunk)
    return PanelScan(
        times=pd.DatetimeIndex(times, tz="UTC") if times else pd.DatetimeIndex([], tz="UTC"),
        rows_at=np.asarray(rows_at, dtype=np.int64),
        targets_at=np.asarray(targets_at, dtype=np.int64),
        n_rows=n_rows,
        n_coins=len(coins),
    )


def fingerprinted(chunks: Iterable[pd.DataFrame], hasher) -> Iterator[pd.DataFrame]:
    """``chunks`` as they are, each hashed into ``hasher`` (a ``hashlib.sha256()``) as it
    goes by: once the chunks of a whole panel have passed, in :func:`stored_chunks` order,
    ``hasher.hexdigest()`` is its :func:`~liquidity_core.training.data.data_fingerprint`."""
    for chunk in chunks:
        ordered = chunk[sorted(chunk.columns)]
        hasher.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
        yield chunk


# --- features over a sliding window -------------------------------------------------------


def windowed_features(
    chunks: Iterable[pd.DataFrame], *, history: int = HISTORY_ROWS
) -> Iterator[FeatureSet]:
    """Features and targets of every row, a chunk at a time (see the module docstring).

    Yields
    ------
    FeatureSet
        For the rows of consecutive snapshot times, oldest first; ``meta["t"]`` is the
        time code over the whole stream (0 = its first time). The rows of a chunk come
        once the next chunk (their targets) has been read.
    """
    window = None  # rows of the times kept: up to history - 1 finished ones, then new
    first_t = 0  # time code of the window's first time
    done_t = 0  # time codes below this were yielded
    chunks = iter(chunks)
    current = next(chunks, None)
    while current is not None:
        following = next(chunks, None)
        window = current if window is None else pd.concat([window, current], ignore_index=True)
        stamps = utc_ns(window["snapshot_ts"])
        times = np.unique(stamps)
        last_t = first_t + len(times) - 1
        upto = last_t if following is None else last_t - 1  # the newest awaits its target
        if following is not None and upto < done_t:  # one time so far: wait for more
            current = following
            continue
        # Features only for the rows yielded now; the older rows are their history.
        new = (stamps >= times[done_t - first_t]) & (stamps <= times[upto - first_t])
        fs = build_features(window, rows=new)
        meta = fs.meta
        meta["t"] = meta["t"].to_numpy() + first_t
        yield FeatureSet(fs.X, fs.y, rows=fs.rows, make_meta=lambda meta=meta: meta)
        done_t = upto + 1
        keep_from = done_t - (history - 1)
        if keep_from > first_t:
            cut = keep_from - first_t
            window = (
                window.iloc[0:0] if cut >= len(times) else window[stamps >= times[cut]]
            ).reset_index(drop=True)
            first_t = keep_from
        current = following
