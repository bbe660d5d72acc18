"""The stored history that predictions read, kept in memory per process.

Every coin's snapshots at the newest ``HISTORY_ROWS`` snapshot times, keyed by the
store's data version: the number of ingest ledger rows and the newest snapshot time
(one small query, :func:`db.probe_row`). The history itself is read again only after an
ingest has changed that version. Snapshots are only ever written by an ingest, which adds
its ledger row in the same transaction, so a copy of an older version is never mistaken
for the current one.

By default the version is asked on every call. A server answering many requests a second
(the web app) sets :func:`set_check_interval`: the version found is then trusted for that
many seconds, so a request costs no database round trip, and an ingest is served at most
that long after it commits (the web app's ``DATA_CHECK_INTERVAL``, 1 s).
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pandas as pd

from liquidity_core.features.build import HISTORY_ROWS, MARKET_FEATURES, build_features
from liquidity_core.store import db, identity
from liquidity_core.store.snapshots import DATA_VERSION, utc_ns

#: One day in nanoseconds: the cadence assumed when only one snapshot time is stored.
DAY_NS = 86_400 * 10**9


class RecentHistory:
    """The stored history predictions read, as of one data version of the store.

    Every coin's snapshots at the newest ``HISTORY_ROWS`` snapshot times, held as plain
    arrays (a request takes a few dozen rows of them, so pandas' per-call overhead would
    cost more than the work), with the lookups a request needs prepared once.

    Attributes
    ----------
    version : tuple
        ``(ingest ledger rows, newest snapshot time)`` when it was read.
    columns : dict of str to numpy.ndarray
        The panel (as :func:`liquidity_core.store.snapshots.panel_from_rows` returns it), by
        column, in time-then-coin order; ``snapshot_ts`` as UTC nanoseconds.
    rows_of : dict
        coin_id -> positions of its rows (oldest first).
    by_symbol : dict
        Upper-case symbol -> coin_id; among coins sharing a symbol the largest cap wins.
    aliases : dict
        Later name slug -> the coin_id it continues (:mod:`liquidity_core.store.identity`).
    checked_at : float
        When (``time.monotonic()``) the store last gave this version when asked; a
        :func:`set_check_interval` long after it, it is asked again.
    stored_answers : dict
        Answers built from this data version and rows of the store that are never
        changed once written (a stored forecast), kept by their reader for the next
        request: they go with this object when a new data version is read.
    """

    def __init__(self, version: tuple, panel: pd.DataFrame, aliases: dict | None = None):
        self.version = version
        self.checked_at = -math.inf
        self.aliases = dict(aliases or {})  # coin identity: later name -> coin_id
        self.columns = {c: panel[c].to_numpy() for c in panel.columns if c != "snapshot_ts"}
        self.columns["snapshot_ts"] = utc_ns(panel["snapshot_ts"])
        self.rows_of = {c: np.sort(i) for c, i in panel.groupby("coin_id").indices.items()}
        last = panel.drop_duplicates("coin_id", keep="last").sort_values("market_cap")
        self.by_symbol = dict(zip(last["symbol"].str.upper(), last["coin_id"], strict=True))
        self._caps: dict = {}
        self.stored_answers: dict = {}
        if len(panel):  # the newest snapshot's caps rank every request without a time
            newest = self.columns["snapshot_ts"][-1]
            self._caps[newest] = self.caps_at(newest)
        # The market-wide features at each stored snapshot time, from every stored coin.
        self.market_times = np.unique(self.columns["snapshot_ts"])
        times = self.market_times
        #: The next snapshot's time (see :meth:`next_time`), once per data version.
        self._next = (
            int(times[-1]) + (int(np.median(np.diff(times))) if len(times) > 1 else DAY_NS)
            if len(times)
            else None
        )
        self.market: dict[str, np.ndarray] = {}
        if len(panel):
            fs = build_features(panel)
            first = ~fs.meta["t"].duplicated().to_numpy()
            self.market = {m: fs.X[m].to_numpy()[first] for m in MARKET_FEATURES}

    def next_time(self) -> int:
        """The time (UTC ns) of the next snapshot: the newest stored time plus the panel's
        cadence (the median step between the stored times; a day when there is one time;
        now when nothing is stored). Rows given without a time are taken as this one."""
        return time.time_ns() if self._next is None else self._next

    def with_market(self, X, ts_ns: np.ndarray):
        """``X`` (a DataFrame or a dict of column arrays, updated in place) with the
        market-wide features of the newest stored snapshot time at or before each row's
        time (UTC ns), and the coin's deviations from them.

        A row at a stored time gets exactly what training computed; a newer row gets
        the newest stored market (the other coins at its own time are not known yet).
        """
        if not self.market or not all(m in X for m in MARKET_FEATURES):
            return X
        at = np.searchsorted(self.market_times, ts_ns, side="right") - 1
        for m in MARKET_FEATURES:
            X[m] = np.where(at >= 0, self.market[m][np.maximum(at, 0)], np.nan)
        X["log_turnover_dev_market"] = X["log_turnover"] - X["market_log_turnover"]
        X["log_mcap_rel"] = X["log_market_cap"] - X["market_log_market_cap"]
        return X

    @classmethod
    def read(cls, engine, version: tuple) -> RecentHistory:
        from liquidity_core.store.snapshots import panel_from_rows, recent_snapshots_query

        with db.transaction(engine) as conn:
            result = conn.execute(recent_snapshots_query(HISTORY_ROWS))
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
            aliases = identity.aliases(conn)  # coin identity
        return cls(version, panel_from_rows(frame), aliases)

    def coin_arrays(self, coin_id: str) -> dict[str, np.ndarray]:
        """One coin's stored rows by column, oldest first (``snapshot_ts`` as
        ``datetime64[ns]``, UTC): a panel for :func:`build_features`."""
        pos = self.rows_of[coin_id]
        out = {c: v[pos] for c, v in self.columns.items()}
        out["snapshot_ts"] = out["snapshot_ts"].view("datetime64[ns]")
        return out

    def coin_rows(self, coin_id: str) -> pd.DataFrame:
        """One coin's stored rows, oldest first (``snapshot_ts`` as UTC times)."""
        pos = self.rows_of[coin_id]
        frame = pd.DataFrame({c: v[pos] for c, v in self.columns.items()})
        frame["snapshot_ts"] = pd.to_datetime(frame["snapshot_ts"], unit="ns", utc=True)
        return frame

    def rows_before(self, matched: list, until: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stored rows of each input row's matched coin dated before its ``until`` time
        (UTC nanoseconds).

        Returns ``(input row numbers, positions)``, one entry per stored row.
        """
        empty = np.zeros(0, dtype=np.int64)
        rows, positions = [empty], [empty]
        ts = self.columns["snapshot_ts"]
        for i, coin in enumerate(matched):
            if coin is not None:
                pos = self.rows_of[coin]
                pos = pos[ts[pos] < until[i]]
                rows.append(np.full(len(pos), i, dtype=np.int64))
                positions.append(pos)
        return np.concatenate(rows), np.concatenate(positions)

    def caps_at(self, ts_ns=None) -> tuple[np.ndarray, dict]:
        """Market caps of every coin at a snapshot time (UTC ns; default the newest):
        ``(sorted caps, {coin_id: cap})``."""
        ts = self.columns["snapshot_ts"]
        if ts_ns is None:
            ts_ns = ts[-1] if len(ts) else None
        if ts_ns in self._caps:
            return self._caps[ts_ns]
        at = ts == ts_ns
        caps = self.columns["market_cap"][at].astype(float)
        return np.sort(caps), dict(zip(self.columns["coin_id"][at], caps, strict=True))


def _data_version(engine) -> tuple:
    """The store's data version, in one round trip (:func:`db.probe_row`)."""
    files, newest = db.probe_row(engine.url, DATA_VERSION)
    return (files, str(newest))


_recent: dict[str, RecentHistory] = {}
_key_of: dict[int, tuple] = {}  # id(engine) -> (engine, its URL as text)
_recent_lock = threading.Lock()
_check_interval = 0.0
_clock = time.monotonic


def set_check_interval(seconds: float) -> None:
    """Trust a data version found for ``seconds`` before asking the store again (0: ask
    on every call, the default). For this process, every store."""
    global _check_interval
    seconds = float(seconds)
    if not seconds >= 0:
        raise ValueError(f"the data check interval must be 0 or more seconds, not {seconds}")
    _check_interval = seconds


def recent_history(engine) -> RecentHistory:
    """This process's copy of the store's recent history, read again when it changed."""
    known = _key_of.get(id(engine))
    if known is None or known[0] is not engine:  # rendering the URL costs, once per engine
        if len(_key_of) >= 64:
            _key_of.clear()
        known = _key_of[id(engine)] = (engine, str(engine.url))
    key = known[1]
    cached = _recent.get(key)
    now = _clock()
    if cached is not None and now - cached.checked_at < _check_interval:
        return cached
    version = _data_version(engine)
    if cached is not None and cached.version == version:
        cached.checked_at = now
        return cached
    with _recent_lock:  # one reader per process; the others wait for its result
        cached = _recent.get(key)
        if cached is None or cached.version != version:
            cached = _recent[key] = RecentHistory.read(engine, version)
        cached.checked_at = now
        return cached


def cap_ranks(caps: tuple[np.ndarray, dict], values: np.ndarray, coin_ids: list) -> np.ndarray:
    """Rank (1 = largest) of each value among ``caps`` (from :meth:`RecentHistory.caps_at`),
    not counting the coin itself."""
    ordered, cap_of = caps
    greater = len(ordered) - np.searchsorted(ordered, values, side="right")
    own = np.array([cap_of.get(c, np.nan) for c in coin_ids], dtype=float)
    greater = greater - (np.nan_to_num(own, nan=-np.inf) > values)
    return np.where(np.isfinite(values), 1.0 + greater, np.nan)
