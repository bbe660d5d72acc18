"""Leak-free features and the forecast target for a panel of market snapshots.

The target of a row (coin *c*, snapshot *t*) is the log turnover
(``log(volume_24h / market_cap)``) of coin *c* at the next distinct snapshot time of the
panel, NaN when the coin is absent there. Every feature of that row uses only what was
known at *t* and before: the row itself, the coin's earlier rows, and the other coins at
the same snapshot (for the market-cap rank). Everything is vectorized over the whole
panel (no per-coin Python loops), so a 1,000,000-row panel takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from liquidity_core.errors import InputError
from liquidity_core.features.columns import (
    ABS_WINDOW,
    BASE_FEATURES,
    DAILY_GAP_DAYS,
    EWM_HALFLIVES,
    HISTORY_ROWS,
    LONG_WINDOW,
    MARKET_FEATURES,
    MEAN_WINDOWS,
    PANEL_COLUMNS,
    V1_FEATURES,
    VOL_WINDOW,
)
from liquidity_core.features.series import log_turnover, market_series, safe_log
from liquidity_core.features.time_axis import NAT_NS, ns_and_unit, time_codes, utc_times
from liquidity_core.features.windows import (
    coin_time_key,
    ewm_windows,
    prefix_sums,
    rank_within_time,
    window_sums,
)


@dataclass(frozen=True)
class FeatureSet:
    """The output of :func:`build_features`; unpacks as ``X, y, meta``.

    Attributes
    ----------
    X : pandas.DataFrame
        One row per panel row, columns ``feature_names``.
    y : pandas.Series
        Target: log turnover at the coin's next panel snapshot (NaN when absent).
    meta : pandas.DataFrame
        Aligned with ``X``: ``coin_id``, ``symbol``, ``coin_name``, ``snapshot_ts``,
        ``t`` (integer code of the snapshot time, 0 = oldest) and ``target_ts``. Built
        on first use (a request that needs only ``X`` does not pay for it).
    rows : numpy.ndarray
        Aligned with ``X``: the position of each row in the panel given.
    """

    X: pd.DataFrame
    y: pd.Series
    rows: np.ndarray
    make_meta: Callable[[], pd.DataFrame] = field(repr=False)

    @cached_property
    def meta(self) -> pd.DataFrame:
        return self.make_meta()

    def __iter__(self):
        return iter((self.X, self.y, self.meta))

    @property
    def feature_names(self) -> list[str]:
        return list(self.X.columns)


def build_features(panel, *, feature_set: str = "v2", rows=None, times=None) -> FeatureSet:
    """Compute features and target for every row of a snapshot panel.

    Parameters
    ----------
    panel : pandas.DataFrame or mapping of str to numpy.ndarray
        Canonical snapshot rows (as returned by ``snapshots.load_snapshots``): at least
        ``coin_id``, ``snapshot_ts``, ``price``, ``change_1h``, ``change_24h``,
        ``change_7d``, ``volume_24h``, ``market_cap``; optional ``symbol``,
        ``coin_name`` and extra numeric ``x_*`` columns, which become features as they are.
        Any row order; one row per (coin_id, snapshot_ts). A mapping of plain arrays
        (``snapshot_ts`` as ``datetime64``, naive meaning UTC) skips pandas' per-call
        overhead, which dominates request-sized panels.
    feature_set : {"v2", "v1"}, default="v2"
        ``"v1"`` keeps only the columns of the first models (:data:`V1_FEATURES`), for
        comparisons; ``"v2"`` is :data:`BASE_FEATURES`.
    rows : array-like of bool, default=None
        Compute features and target only for the panel rows marked True (in the panel's
        order); their history and market still come from every row. Each selected row
        gets exactly what it gets without the selection. Default: every row.
    times : array-like of datetime64 or None, default=None
        The panel's time axis, which the history windows count: every snapshot time of
        the store the rows come from, when the panel holds only some coins' rows (as at
        prediction). Every row's time must be on it. Default: the rows' distinct times.

    Returns
    -------
    FeatureSet
        ``X, y, meta = build_features(panel)``; rows sorted by (snapshot_ts, coin_id).

    Raises
    ------
    InputError
        When a required column is missing, a (coin_id, snapshot_ts) pair repeats,
        ``rows`` does not have one flag per panel row or a row's time is not on ``times``.

    Notes
    -----
    History windows count snapshot times of the panel (the current one included), not
    the coin's rows, so features never depend on how old a coin's rows before the window
    are. Missing history is NaN.
    """
    if feature_set not in ("v1", "v2"):
        raise InputError(f"feature_set {feature_set!r} is not one of ['v1', 'v2']")
    order, logs, extras = _prepare(panel, rows, times)
    feats = _features(order, logs, extras, market=True)
    y, has_next = _target(order, logs.lt)
    names = [*(V1_FEATURES if feature_set == "v1" else BASE_FEATURES), *extras]
    return _feature_set(order, feats, names, y, has_next)


#: The features of a row that come from the other coins at its snapshot time: the
#: market-cap rank, the market-wide components and the coin against them.
CROSS_SECTION_FEATURES = ("mcap_rank", *MARKET_FEATURES, "log_turnover_dev_market", "log_mcap_rel")


def own_features(panel, *, rows, times=None) -> dict[str, np.ndarray]:
    """The ``"v2"`` features of the ``rows`` of ``panel`` that come from each row and its
    coin's history, as :func:`build_features` computes them, for callers that take the
    rest from elsewhere (prediction, which takes the market from the store).

    ``panel``, ``rows`` and ``times`` are as for :func:`build_features`. Returns
    ``{feature: values}`` in :data:`BASE_FEATURES` order (then the ``x_*`` columns), one
    value per selected row in the panel's order; the :data:`CROSS_SECTION_FEATURES` are
    NaN, and neither the target nor the meta is computed. Every other value is bit for bit
    the one :func:`build_features` gives the row.
    """
    order, logs, extras = _prepare(panel, rows, times)
    feats = _features(order, logs, extras, market=False)
    back = np.argsort(order.by_coin[order.sel], kind="stable")  # the panel's order
    nan = np.full(len(back), np.nan)
    return {c: nan.copy() if c not in feats else feats[c][back] for c in (*BASE_FEATURES, *extras)}


def _prepare(panel, rows, times) -> tuple[_CoinOrder, _LogSeries, list[str]]:
    """The panel checked and in coin order, its log series and its ``x_*`` columns."""
    columns = list(panel.columns) if isinstance(panel, pd.DataFrame) else list(panel)
    missing = [c for c in PANEL_COLUMNS if c not in columns]
    if missing:
        raise InputError(f"panel lacks column(s) {missing}; it has {columns}")
    extras = sorted(c for c in columns if c.startswith("x_"))
    keep = [*PANEL_COLUMNS, *[c for c in ("symbol", "coin_name") if c in columns], *extras]
    order = _coin_order(panel, keep, rows, times)
    return order, _log_series(order), extras


def _features(order, logs, extras: list[str], *, market: bool) -> dict[str, np.ndarray]:
    """Every feature of the selected rows (coin order); without the
    :data:`CROSS_SECTION_FEATURES` unless ``market``."""
    feats = _row_features(order, logs, rank=market)
    feats.update(_window_features(order, logs))
    if market:
        feats.update(_market_features(order, logs, feats))
    for c in extras:
        feats[c] = pd.to_numeric(order.col[c][order.sel], errors="coerce").astype(float)
    return feats


def _roll1(a: np.ndarray) -> np.ndarray:
    """``np.roll(a, 1)`` of a 1-D array (the last value first), without its generic
    axis handling, which costs more than the copy on a request's few rows."""
    return np.concatenate((a[-1:], a[:-1]))


@dataclass(frozen=True)
class _CoinOrder:
    """The panel as plain arrays in coin-then-time order (for the per-coin windows).

    ``col`` holds every kept column but ``snapshot_ts``; ``t`` is each row's code on the
    time axis ``times_ns`` (UTC nanoseconds, given back in ``unit``); ``by_coin`` the
    position of each row in the panel; ``key`` the coin-time key of the windows;
    ``new_coin`` marks a coin's first row and ``prev_gone`` a row whose coin has no
    previous row within the history. The rows to compute are ``at`` (for the windows)
    and ``sel`` (for the per-row arrays: a view when every row is wanted).
    """

    col: dict[str, np.ndarray]
    t: np.ndarray
    times_ns: np.ndarray
    unit: str
    by_coin: np.ndarray
    key: np.ndarray
    new_coin: np.ndarray
    prev_gone: np.ndarray
    at: np.ndarray
    sel: np.ndarray | slice


def _coin_order(panel, keep: list[str], rows, times) -> _CoinOrder:
    """The panel's ``keep`` columns in coin-then-time order, checked for repeated rows."""
    # Plain arrays from here on: a request-sized panel of a few dozen rows is dominated
    # by per-call pandas overhead, so the frames are built once, at the end.
    ts_ns, unit = ns_and_unit(panel["snapshot_ts"])
    t_code, times_ns = time_codes(ts_ns, times)
    # Work in coin-then-time order for the per-coin windows.
    ids = np.asarray(panel["coin_id"])
    if ids.dtype.kind in "iu":  # serving's pseudo-coins (row numbers): no pandas call
        coin_code = np.unique(ids, return_inverse=True)[1].reshape(-1)
    else:
        coin_code, _ = pd.factorize(ids, sort=True)
    by_coin = np.lexsort((t_code, coin_code))
    col = {c: np.asarray(panel[c])[by_coin] for c in keep if c != "snapshot_ts"}
    coin = col["coin_id"]
    t = t_code[by_coin]
    n = len(coin)
    new_coin = np.ones(n, dtype=bool)
    new_coin[1:] = coin[1:] != coin[:-1]
    if n > 1 and np.any((~new_coin[1:]) & (t[1:] == t[:-1])):
        dup = np.flatnonzero((~new_coin[1:]) & (t[1:] == t[:-1]))[0] + 1
        when = pd.Timestamp(int(times_ns[t[dup]]), tz="UTC")
        raise InputError(
            f"panel has more than one row for coin_id={coin[dup]!r} at snapshot_ts={when}"
        )
    key = coin_time_key(coin_code[by_coin], t)
    # The coin's previous row, where it is within the history (HISTORY_ROWS snapshot times).
    prev_gone = new_coin | (t - _roll1(t) >= HISTORY_ROWS)
    if rows is None:
        at, sel = np.arange(n), slice(None)
    else:
        rows = np.asarray(rows, dtype=bool)
        if rows.shape != (n,):
            raise InputError(f"rows has {rows.size} flags for a panel of {n} rows")
        at = sel = np.flatnonzero(rows[by_coin])
    return _CoinOrder(col, t, times_ns, unit, by_coin, key, new_coin, prev_gone, at, sel)


@dataclass(frozen=True)
class _LogSeries:
    """Every row's log turnover, log price, log market cap and log return (coin order),
    the log turnover of the coin's previous row (NaN beyond the history) and the absolute
    change from it."""

    lt: np.ndarray
    prev_lt: np.ndarray
    abs_diff: np.ndarray
    log_price: np.ndarray
    ret: np.ndarray
    log_mcap: np.ndarray


def _log_series(order: _CoinOrder) -> _LogSeries:
    col, prev_gone = order.col, order.prev_gone
    lt = log_turnover(col["volume_24h"], col["market_cap"])
    log_price = safe_log(col["price"])
    prev_lt = np.where(prev_gone, np.nan, _roll1(lt))
    prev_lp = np.where(prev_gone, np.nan, _roll1(log_price))
    ret = log_price - prev_lp
    abs_diff = np.abs(lt - prev_lt)
    return _LogSeries(lt, prev_lt, abs_diff, log_price, ret, safe_log(col["market_cap"]))


def _row_features(
    order: _CoinOrder, logs: _LogSeries, *, rank: bool = True
) -> dict[str, np.ndarray]:
    """The features of each selected row from the row itself, its coin's previous row
    and (``rank``) the other coins at its snapshot time."""
    col, sel, t = order.col, order.sel, order.t
    change_24h = col["change_24h"].astype(float)[sel]
    feats = {
        "log_price": logs.log_price[sel],
        "change_1h": col["change_1h"].astype(float)[sel],
        "change_24h": change_24h,
        "change_7d": col["change_7d"].astype(float)[sel],
        "log_volume": safe_log(col["volume_24h"])[sel],
        "log_market_cap": logs.log_mcap[sel],
        "log_turnover": logs.lt[sel],
        "log_turnover_diff": (logs.lt - logs.prev_lt)[sel],
        "return_1": logs.ret[sel],
        # Volatility proxies.
        "abs_log_turnover_diff": logs.abs_diff[sel],
        "abs_return_1": np.abs(logs.ret[sel]),
        "abs_change_24h": np.abs(change_24h),
    }
    if rank:  # market-cap rank within the snapshot (1 = largest): same-time rows only
        feats["mcap_rank"] = rank_within_time(col["market_cap"].astype(float), t)[sel]
    # Cadence and calendar: the time since the coin's previous snapshot, and (at a daily
    # cadence) the weekday of the target, assumed one such gap ahead.
    row_ns = order.times_ns[t]
    gap = np.where(order.prev_gone, np.nan, (row_ns - _roll1(row_ns)) / 86_400e9)[sel]
    feats["gap_days"] = gap
    daily = np.isfinite(gap) & (gap <= DAILY_GAP_DAYS)
    target_ns = row_ns[sel] + np.where(daily, gap, 0.0) * 86_400e9
    weekday = ((target_ns // 86_400e9).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    feats["target_weekday"] = np.where(daily, weekday, np.nan).astype(float)
    return feats


def _window_mean(values: np.ndarray, order: _CoinOrder, window: int, prefix=None) -> np.ndarray:
    """The mean of ``values`` over the coin's rows within ``window`` snapshot times
    (``prefix``: their :func:`prefix_sums`, when known)."""
    s, _s2, cnt = window_sums(values, order.key, window, order.at, prefix)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)


def _window_features(order: _CoinOrder, logs: _LogSeries) -> dict[str, np.ndarray]:
    """The features of each selected row over its coin's earlier rows (history windows)."""
    key, at = order.key, order.at
    lt_sums = prefix_sums(logs.lt)  # for every window of the log turnover
    feats = {
        f"log_turnover_mean_{w}": _window_mean(logs.lt, order, w, lt_sums) for w in MEAN_WINDOWS
    }
    s, s2, cnt = window_sums(logs.ret, key, VOL_WINDOW, at)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s * s / np.maximum(cnt, 1)) / np.maximum(cnt - 1, 1)
    feats[f"volatility_{VOL_WINDOW}"] = np.where(cnt >= 2, np.sqrt(np.maximum(var, 0.0)), np.nan)
    # The coin's rows within the history: what prediction, which reads only the newest
    # HISTORY_ROWS snapshot times, can count too.
    feats["snapshots_seen"] = window_sums(np.ones(len(order.t)), key, HISTORY_ROWS, at)[2]
    # Memory: a long window and exponentially weighted means, and today against them.
    long_mean = _window_mean(logs.lt, order, LONG_WINDOW, lt_sums)
    feats[f"log_turnover_mean_{LONG_WINDOW}"] = long_mean
    ewms = ewm_windows(logs.lt, key, EWM_HALFLIVES, LONG_WINDOW, at)
    for h, values in zip(EWM_HALFLIVES, ewms, strict=True):
        feats[f"log_turnover_ewm_{h}"] = values
    feats["log_turnover_dev_long"] = logs.lt[order.sel] - long_mean
    abs_mean = _window_mean(logs.abs_diff, order, ABS_WINDOW)
    feats[f"abs_log_turnover_diff_mean_{ABS_WINDOW}"] = abs_mean
    return feats


def _market_features(order: _CoinOrder, logs: _LogSeries, feats) -> dict[str, np.ndarray]:
    """Market-wide components at each selected row's snapshot, and the coin against them
    (``feats`` holds the row's own ``log_turnover`` and ``log_market_cap``)."""
    market = market_series(order.t, len(order.times_ns), logs.lt, logs.ret, logs.log_mcap)
    t_sel = order.t[order.sel]
    out = {name: market[name][t_sel] for name in MARKET_FEATURES}
    out["log_turnover_dev_market"] = feats["log_turnover"] - out["market_log_turnover"]
    out["log_mcap_rel"] = feats["log_market_cap"] - out["market_log_market_cap"]
    return out


def _target(order: _CoinOrder, lt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each selected row's target, the same coin's log turnover at the next distinct panel
    time, and whether the coin has a row there."""
    t, sel = order.t, order.sel
    next_same_coin = np.zeros(len(t), dtype=bool)
    next_same_coin[:-1] = ~order.new_coin[1:]
    next_t = np.roll(t, -1)
    has_next = (next_same_coin & (next_t == t + 1))[sel]
    return np.where(has_next, np.roll(lt, -1)[sel], np.nan), has_next


def _feature_set(order: _CoinOrder, feats, names: list[str], y, has_next) -> FeatureSet:
    """The ``names`` columns of ``feats``, the target and the meta, back in time-then-coin
    order (the order of load_snapshots)."""
    sel, times_ns, unit = order.sel, order.times_ns, order.unit
    t_sel = order.t[sel]
    rank = np.argsort(t_sel, kind="stable")
    t_out = t_sel[rank]
    block = np.empty((len(names), len(rank)))  # one float block, one column per row
    for i, c in enumerate(names):
        block[i] = feats[c][rank]
    X = pd.DataFrame(block.T, columns=names, copy=False)

    # The meta frame is built on first use, from these arrays only (not the whole panel).
    col = order.col
    ids = col["coin_id"][sel][rank]
    symbol = col["symbol"][sel][rank] if "symbol" in col else None
    name = col["coin_name"][sel][rank] if "coin_name" in col else None
    next_ns = np.where(has_next[rank], times_ns[np.minimum(t_out + 1, len(times_ns) - 1)], NAT_NS)

    def make_meta() -> pd.DataFrame:
        return pd.DataFrame(
            {
                "coin_id": ids,
                "symbol": symbol,
                "coin_name": name,
                "snapshot_ts": utc_times(times_ns[t_out], unit),
                "t": t_out,
                "target_ts": utc_times(next_ns, unit),
            }
        )

    y = pd.Series(y[rank], name="target_log_turnover")
    return FeatureSet(X, y, rows=order.by_coin[sel][rank], make_meta=make_meta)
