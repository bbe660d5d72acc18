"""Coin identity across renames.

``market_snapshots.coin_id`` is the slug of the coin's name as read
(:func:`liquidity_core.inputs.formats.coin_slug`), so a renamed coin ("Tether" -> "Tether USDt",
"Binance Coin" -> "BNB") would start again with no history. This module decides which
names are the same coin and records it in ``coin_aliases``; the view ``coin_snapshots``
(``sql/004_coin_aliases.sql``) applies it, and every reader (the training panel, the
prediction history, the coin page, the report) reads snapshots through that view.

The rule
--------
Name B continues name A (B is an alias of A) when all of these hold:

1. the same symbol (trimmed, upper case) at A's last snapshot and at B's first;
2. adjacency: A's last snapshot is the panel's distinct snapshot time immediately before
   B's first (a gap of one snapshot or more is no link), so A and B never overlap;
3. market-cap continuity: ``max(capA, capB) / min(capA, capB) <= MCAP_FACTOR`` (3x)
   between A's last and B's first snapshot, both caps positive;
4. no ambiguity: no other coin holds that symbol at A's last snapshot nor at B's first
   (two coins sharing a ticker there make it a new coin), which also makes the link
   unique both ways.

Chains (A -> B -> C) resolve to the root: every alias maps to the oldest name's slug.
Anything that fails a test is a new coin, the safe side: a wrong merge would mix two
coins' histories, a missed one only loses history.

The mapping is a pure function of the stored ``(coin_id, symbol, snapshot_ts,
market_cap)``: :func:`recompute` rebuilds it after every load, in the load's transaction,
from one grouped pass over ``market_snapshots`` (first/last row of each name), the
distinct snapshot times and, at the times where a link could start or end, the symbols
held by more than one coin. So it is
the same whichever order the files arrived in and whatever their format.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from liquidity_core.store import db
from liquidity_core.store.schema import coin_aliases, market_snapshots
from liquidity_core.store.snapshots import SNAPSHOT_TIMES

#: Largest ratio between the market caps either side of a rename (A's last, B's first).
#: Day-to-day caps rarely move 3x; a bigger jump means a different coin took the ticker.
MCAP_FACTOR = 3.0


_DECISION = ("alias_id", "coin_id", "previous_id", "symbol", "previous_last_ts", "alias_first_ts")


def _frame(conn: Connection, stmt) -> pd.DataFrame:
    result = conn.execute(stmt)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _symbol(column):
    return sa.func.upper(sa.func.trim(column))


def _spans_query():
    """Each stored name: first and last snapshot time, symbol and market cap at both."""
    s = market_snapshots
    spans = (
        sa.select(
            s.c.coin_id,
            sa.func.min(s.c.snapshot_ts).label("first_ts"),
            sa.func.max(s.c.snapshot_ts).label("last_ts"),
        )
        .group_by(s.c.coin_id)
        .cte("spans")
    )
    first, last = s.alias("f"), s.alias("l")
    return (
        sa.select(
            spans.c.coin_id,
            spans.c.first_ts,
            spans.c.last_ts,
            _symbol(first.c.symbol).label("first_symbol"),
            first.c.market_cap.label("first_cap"),
            _symbol(last.c.symbol).label("last_symbol"),
            last.c.market_cap.label("last_cap"),
        )
        .join(
            first, (first.c.snapshot_ts == spans.c.first_ts) & (first.c.coin_id == spans.c.coin_id)
        )
        .join(last, (last.c.snapshot_ts == spans.c.last_ts) & (last.c.coin_id == spans.c.coin_id))
    )


def _shared_symbols_query(times):
    """Symbols held by two or more stored names at each of ``times`` (stored values)."""
    s = market_snapshots
    symbol = _symbol(s.c.symbol)
    return (
        sa.select(s.c.snapshot_ts, symbol.label("symbol"), sa.func.count().label("n"))
        .where(s.c.snapshot_ts.in_(times))
        .group_by(s.c.snapshot_ts, symbol)
        .having(sa.func.count() > 1)
    )


def _utc(values) -> pd.Series:
    return pd.to_datetime(pd.Series(list(values), dtype=object), utc=True, format="ISO8601")


def _ns(values) -> np.ndarray:
    """UTC nanoseconds of stored times (text on SQLite, datetimes on PostgreSQL)."""
    return (
        _utc(values)
        .dt.tz_convert("UTC")
        .dt.tz_localize(None)
        .to_numpy("datetime64[ns]")
        .astype(np.int64)
    )


def _adjacent_pairs(spans: pd.DataFrame, times) -> pd.DataFrame:
    """Pairs of names that pass rules 1 and 2: A's last snapshot time is the one just
    before B's first, with the same symbol at both. ``last_raw_prev`` (A's last) and
    ``first_raw`` (B's first) are the times as stored."""
    s = spans.assign(first_raw=spans["first_ts"], last_raw=spans["last_ts"])
    s["first_ts"], s["last_ts"] = _ns(s["first_ts"]), _ns(s["last_ts"])
    t = np.unique(_ns(times))
    pos = np.searchsorted(t, s["first_ts"].to_numpy())
    s["prev_ts"] = np.where(pos > 0, t[np.maximum(pos - 1, 0)], np.iinfo(np.int64).min)
    ends = s[["coin_id", "last_ts", "last_symbol", "last_cap", "last_raw"]].rename(
        columns={"coin_id": "previous_id"}
    )
    pairs = s.merge(
        ends,
        left_on=["prev_ts", "first_symbol"],
        right_on=["last_ts", "last_symbol"],
        suffixes=("", "_prev"),
    )
    return pairs[pairs["previous_id"] != pairs["coin_id"]]


def decide(
    spans: pd.DataFrame, times, shared: pd.DataFrame, factor: float = MCAP_FACTOR
) -> pd.DataFrame:
    """The aliases implied by per-name spans (pure; see the module docstring).

    Parameters
    ----------
    spans : pandas.DataFrame
        One row per name slug: ``coin_id, first_ts, last_ts, first_symbol, first_cap,
        last_symbol, last_cap`` (:func:`_spans_query`).
    times : sequence
        The panel's distinct snapshot times.
    shared : pandas.DataFrame
        ``snapshot_ts, symbol`` pairs held by more than one coin.

    Returns
    -------
    pandas.DataFrame
        Columns ``alias_id, coin_id (root), previous_id, symbol, previous_last_ts,
        alias_first_ts, cap_ratio``, sorted by ``alias_id``.
    """
    if spans.empty:
        return pd.DataFrame(columns=[*_DECISION, "cap_ratio"])
    return _links(_adjacent_pairs(spans, times), shared, factor)


def _links(pairs: pd.DataFrame, shared: pd.DataFrame, factor: float) -> pd.DataFrame:
    """:func:`decide` after rules 1 and 2: rules 3 and 4 over the adjacent ``pairs``
    (:func:`_adjacent_pairs`), then chains resolved to their root."""
    busy = set(zip(_ns(shared["snapshot_ts"]).tolist(), shared["symbol"].astype(str), strict=True))
    # The ticker must be held by one coin only at both ends; this makes the link unique.
    free = [
        (int(a), sym) not in busy and (int(b), sym) not in busy
        for a, b, sym in zip(
            pairs["last_ts_prev"], pairs["first_ts"], pairs["first_symbol"], strict=True
        )
    ]
    pairs = pairs[np.array(free, dtype=bool)] if len(pairs) else pairs
    a, b = pairs["last_cap_prev"].astype(float), pairs["first_cap"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(a, b) / np.minimum(a, b)
    pairs = pairs.assign(cap_ratio=ratio)
    pairs = pairs[(a > 0) & (b > 0) & (pairs["cap_ratio"] <= factor)]
    pairs = pairs[~pairs["coin_id"].duplicated(keep=False)]
    pairs = pairs[~pairs["previous_id"].duplicated(keep=False)]

    parent = dict(zip(pairs["coin_id"], pairs["previous_id"], strict=True))

    def root(c: str) -> str:
        seen = {c}
        while c in parent and parent[c] not in seen:  # adjacency in time rules out cycles
            c = parent[c]
            seen.add(c)
        return c

    out = pd.DataFrame(
        {
            "alias_id": pairs["coin_id"].astype(str),
            "coin_id": [root(c) for c in pairs["coin_id"]],
            "previous_id": pairs["previous_id"].astype(str),
            "symbol": pairs["first_symbol"].astype(str),
            "previous_last_ts": pairs["last_ts_prev"].map(_text),
            "alias_first_ts": pairs["first_ts"].map(_text),
            "cap_ratio": pairs["cap_ratio"].astype(float),
        }
    )
    return out.sort_values("alias_id").reset_index(drop=True)[[*_DECISION, "cap_ratio"]]


def _text(ts) -> str:
    ts = pd.Timestamp(ts, tz="UTC") if isinstance(ts, int | np.integer) else pd.Timestamp(ts)
    return ts.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def recompute(conn: Connection, *, factor: float = MCAP_FACTOR) -> dict:
    """Rebuild ``coin_aliases`` from the stored snapshots, inside ``conn``'s transaction.

    Rows whose decision is unchanged are kept (with their ``decided_at``); others are
    deleted or inserted. Returns ``{"aliases": n, "added": n, "removed": n}``.
    """
    if db.dialect_of(conn) == "postgresql":
        # Recomputes of this store wait for each other, so each sees the rows the other
        # committed. A lock on its own aliases table (SHARE ROW EXCLUSIVE conflicts with
        # itself, not with readers) and not a database-wide advisory key: stores in other
        # schemas of the same database do not queue behind it.
        conn.exec_driver_sql("LOCK TABLE coin_aliases IN SHARE ROW EXCLUSIVE MODE")
    spans = _frame(conn, _spans_query())
    times = _frame(conn, SNAPSHOT_TIMES)["snapshot_ts"]
    # Rule 4 needs the shared tickers only where a link could start or end: counting
    # them over every stored row cost most of a 10M-row load's recompute.
    pairs = _adjacent_pairs(spans, times)
    at = sorted({*pairs["last_raw_prev"], *pairs["first_raw"]})
    shared = (
        _frame(conn, _shared_symbols_query(at))
        if at
        else pd.DataFrame({"snapshot_ts": [], "symbol": [], "n": []})
    )
    new = _links(pairs, shared, factor)
    old = pd.DataFrame(
        conn.execute(sa.select(coin_aliases)).mappings().all(),
        columns=[c.name for c in coin_aliases.columns],
    )
    if len(old):
        for col in ("previous_last_ts", "alias_first_ts"):
            old[col] = [_text(v) for v in _ns(old[col])]
    key = lambda f: set(map(tuple, f[list(_DECISION)].astype(str).to_numpy()))  # noqa: E731
    keep = key(old) & key(new)
    drop = [r[0] for r in key(old) - keep]
    add = new[[tuple(r) not in keep for r in new[list(_DECISION)].astype(str).to_numpy()]]
    if drop:
        conn.execute(coin_aliases.delete().where(coin_aliases.c.alias_id.in_(drop)))
    if len(add):
        now = _text(pd.Timestamp.now(tz="UTC"))
        conn.execute(
            coin_aliases.insert(),
            [
                {**r, "cap_ratio": float(r["cap_ratio"]), "decided_at": now}
                for r in add.to_dict("records")
            ],
        )
    return {"aliases": len(new), "added": len(add), "removed": len(drop)}


def refresh(engine: Engine) -> dict:
    """:func:`recompute` in a transaction of its own (e.g. after upgrading to 004)."""
    with db.transaction(engine) as conn:
        return recompute(conn)


def aliases(bind: Engine | Connection) -> dict[str, str]:
    """``{alias_id: coin_id}`` for every recorded later name of a coin."""
    stmt = sa.select(coin_aliases.c.alias_id, coin_aliases.c.coin_id)
    if isinstance(bind, Engine):
        with db.transaction(bind) as conn:
            return dict(conn.execute(stmt).all())
    return dict(bind.execute(stmt).all())


def canonical(coin_id: str, mapping: dict[str, str]) -> str:
    """The coin a name slug belongs to (itself when it is no alias)."""
    return mapping.get(coin_id, coin_id)
