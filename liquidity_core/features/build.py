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
from liquidity_core.features.windows import (
    by_time_median,
    coin_time_key,
    ewm_windows,
    rank_within_time,
    window_sums,
)
from liquidity_core.store.schema import MEASURES

#: Columns every panel must have (see ``snapshots.load_snapshots``).
PANEL_COLUMNS = ("coin_id", "snapshot_ts", *MEASURES)

#: Windows (in snapshot times of the panel, the current one included) of the mean log
#: turnover. Every window is bounded by snapshot time: a coin missing from some snapshots
#: has fewer rows in it (see :mod:`liquidity_core.features.windows`).
MEAN_WINDOWS = (3, 7, 30)
#: Window of the return volatility (standard deviation of log price changes).
VOL_WINDOW = 7
#: The coin's long-run mean log turnover: over the last this many snapshot times. A
#: window rather than an expanding mean so that prediction, which reads a bounded history,
#: computes it exactly as training did (at a monthly cadence it covers ~5 years).
LONG_WINDOW = 60
#: Half-lives (in snapshot times) of the exponentially weighted means of log turnover;
#: the weights are cut at LONG_WINDOW snapshot times and renormalized.
EWM_HALFLIVES = (2, 8, 24)
#: Window (snapshots) of the mean absolute change of log turnover.
ABS_WINDOW = 7
#: Snapshot times over which the market's median log turnover change is taken.
MARKET_CHANGE_LAG = 7
#: The most history any feature looks at, in snapshot times (the current one included):
#: predicting needs the newest this many snapshot times. A coin's previous row further
#: back than that is not used (its change, return and gap are NaN).
HISTORY_ROWS = max(*MEAN_WINDOWS, VOL_WINDOW + 1, LONG_WINDOW)
#: A cadence is daily when the time since the coin's previous snapshot is at most this.
DAILY_GAP_DAYS = 1.5

#: Turnover below this is floored before the log, so a zero volume stays finite.
TURNOVER_FLOOR = 1e-9

#: The feature set of the first published models (kept for comparison, see bench/skill).
V1_FEATURES = [
    "log_price",
    "change_1h",
    "change_24h",
    "change_7d",
    "log_volume",
    "log_market_cap",
    "log_turnover",
    "log_turnover_diff",
    *[f"log_turnover_mean_{w}" for w in MEAN_WINDOWS],
    "return_1",
    f"volatility_{VOL_WINDOW}",
    "mcap_rank",
    "snapshots_seen",
]

#: Cross-sectional features: computed from every coin at the snapshot time (and the
#: market's earlier snapshot times). Prediction fills them from the stored history.
MARKET_FEATURES = [
    "market_log_turnover",
    "market_log_turnover_change",
    "market_abs_return",
    "market_log_market_cap",
]

BASE_FEATURES = [
    *V1_FEATURES,
    # memory
    f"log_turnover_mean_{LONG_WINDOW}",
    *[f"log_turnover_ewm_{h}" for h in EWM_HALFLIVES],
    "log_turnover_dev_long",
    # market-wide components and the coin against them
    *MARKET_FEATURES,
    "log_turnover_dev_market",
    "log_mcap_rel",
    # volatility proxies
    "abs_log_turnover_diff",
    f"abs_log_turnover_diff_mean_{ABS_WINDOW}",
    "abs_return_1",
    "abs_change_24h",
    # cadence and calendar
    "gap_days",
    "target_weekday",
]


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


def log_turnover(volume, market_cap) -> np.ndarray:
    """``log(volume / market_cap)`` with a floor; NaN where the market cap is not positive."""
    volume = np.asarray(volume, dtype=float)
    market_cap = np.asarray(market_cap, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        turnover = np.where(market_cap > 0, volume / market_cap, np.nan)
        return np.log(np.maximum(turnover, TURNOVER_FLOOR))


def _safe_log(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log(values), np.nan)


def market_series(t: np.ndarray, n_times: int, lt, ret, log_mcap) -> dict[str, np.ndarray]:
    """The market-wide components per snapshot time (index = time code): the median log
    turnover, its change over the last MARKET_CHANGE_LAG snapshot times, the median
    absolute log return and the median log market cap. Each uses only the rows at that
    time and at earlier times."""
    market_lt = by_time_median(lt, t, n_times)
    earlier = np.full(n_times, np.nan)
    lag = min(MARKET_CHANGE_LAG, max(n_times - 1, 0))
    if lag:
        # The change from the newest known median LAG times back (or the oldest one).
        codes = np.arange(n_times)
        back = np.maximum(codes - MARKET_CHANGE_LAG, 0)
        earlier = np.where(codes > 0, market_lt[back], np.nan)
    return {
        "market_log_turnover": market_lt,
        "market_log_turnover_change": market_lt - earlier,
        "market_abs_return": by_time_median(np.abs(ret), t, n_times),
        "market_log_market_cap": by_time_median(log_mcap, t, n_times),
    }


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
    columns = list(panel.columns) if isinstance(panel, pd.DataFrame) else list(panel)
    missing = [c for c in PANEL_COLUMNS if c not in columns]
    if missing:
        raise InputError(f"panel lacks column(s) {missing}; it has {columns}")
    extras = sorted(c for c in columns if c.startswith("x_"))
    keep = [*PANEL_COLUMNS, *[c for c in ("symbol", "coin_name") if c in columns], *extras]
    # Plain arrays from here on: a request-sized panel of a few dozen rows is dominated
    # by per-call pandas overhead, so the frames are built once, at the end.
    ts_ns, unit = _utc_ns(panel["snapshot_ts"])
    t_code, times_ns = _time_codes(ts_ns, times)
    # Work in coin-then-time order for the per-coin windows.
    coin_code, _ = pd.factorize(np.asarray(panel["coin_id"]), sort=True)
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
    prev_gone = new_coin | (t - np.roll(t, 1) >= HISTORY_ROWS)
    # The rows to compute (in coin-then-time order): `at` for the windows, `sel` for the
    # per-row arrays (a view when every row is wanted).
    if rows is None:
        at, sel = np.arange(n), slice(None)
    else:
        rows = np.asarray(rows, dtype=bool)
        if rows.shape != (n,):
            raise InputError(f"rows has {rows.size} flags for a panel of {n} rows")
        at = sel = np.flatnonzero(rows[by_coin])

    lt = log_turnover(col["volume_24h"], col["market_cap"])
    log_price = _safe_log(col["price"])
    prev_lt = np.where(prev_gone, np.nan, np.roll(lt, 1))
    prev_lp = np.where(prev_gone, np.nan, np.roll(log_price, 1))
    ret = log_price - prev_lp
    log_mcap = _safe_log(col["market_cap"])
    change_24h = col["change_24h"].astype(float)[sel]

    feats = {
        "log_price": log_price[sel],
        "change_1h": col["change_1h"].astype(float)[sel],
        "change_24h": change_24h,
        "change_7d": col["change_7d"].astype(float)[sel],
        "log_volume": _safe_log(col["volume_24h"])[sel],
        "log_market_cap": log_mcap[sel],
        "log_turnover": lt[sel],
        "log_turnover_diff": (lt - prev_lt)[sel],
    }
    for w in MEAN_WINDOWS:
        s, _s2, cnt = window_sums(lt, key, w, at)
        with np.errstate(invalid="ignore", divide="ignore"):
            feats[f"log_turnover_mean_{w}"] = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
    feats["return_1"] = ret[sel]
    s, s2, cnt = window_sums(ret, key, VOL_WINDOW, at)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s * s / np.maximum(cnt, 1)) / np.maximum(cnt - 1, 1)
    feats[f"volatility_{VOL_WINDOW}"] = np.where(cnt >= 2, np.sqrt(np.maximum(var, 0.0)), np.nan)
    # Market-cap rank within the snapshot (1 = largest): only same-time rows are used.
    feats["mcap_rank"] = rank_within_time(col["market_cap"].astype(float), t)[sel]
    # The coin's rows within the history: what prediction, which reads only the newest
    # HISTORY_ROWS snapshot times, can count too.
    feats["snapshots_seen"] = window_sums(np.ones(n), key, HISTORY_ROWS, at)[2]

    # Memory: a long window and exponentially weighted means, and today against them.
    s, _s2, cnt = window_sums(lt, key, LONG_WINDOW, at)
    with np.errstate(invalid="ignore", divide="ignore"):
        long_mean = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
    feats[f"log_turnover_mean_{LONG_WINDOW}"] = long_mean
    ewms = ewm_windows(lt, key, EWM_HALFLIVES, LONG_WINDOW, at)
    for h, values in zip(EWM_HALFLIVES, ewms, strict=True):
        feats[f"log_turnover_ewm_{h}"] = values
    feats["log_turnover_dev_long"] = feats["log_turnover"] - long_mean
    # Market-wide components at the snapshot, and the coin against them.
    market = market_series(t, len(times_ns), lt, ret, log_mcap)
    for name in MARKET_FEATURES:
        feats[name] = market[name][t[sel]]
    feats["log_turnover_dev_market"] = feats["log_turnover"] - feats["market_log_turnover"]
    feats["log_mcap_rel"] = feats["log_market_cap"] - feats["market_log_market_cap"]
    # Volatility proxies.
    abs_diff = np.abs(lt - prev_lt)
    feats["abs_log_turnover_diff"] = abs_diff[sel]
    s, _s2, cnt = window_sums(abs_diff, key, ABS_WINDOW, at)
    with np.errstate(invalid="ignore", divide="ignore"):
        feats[f"abs_log_turnover_diff_mean_{ABS_WINDOW}"] = np.where(
            cnt > 0, s / np.maximum(cnt, 1), np.nan
        )
    feats["abs_return_1"] = np.abs(ret[sel])
    feats["abs_change_24h"] = np.abs(change_24h)
    # Cadence and calendar: the time since the coin's previous snapshot, and (at a daily
    # cadence) the weekday of the target, assumed one such gap ahead.
    row_ns = times_ns[t]
    gap = np.where(prev_gone, np.nan, (row_ns - np.roll(row_ns, 1)) / 86_400e9)[sel]
    feats["gap_days"] = gap
    daily = np.isfinite(gap) & (gap <= DAILY_GAP_DAYS)
    target_ns = row_ns[sel] + np.where(daily, gap, 0.0) * 86_400e9
    weekday = ((target_ns // 86_400e9).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    feats["target_weekday"] = np.where(daily, weekday, np.nan).astype(float)
    for c in extras:
        feats[c] = pd.to_numeric(col[c][sel], errors="coerce").astype(float)

    # Target: the same coin's log turnover at the next distinct panel time.
    next_same_coin = np.zeros(n, dtype=bool)
    next_same_coin[:-1] = ~new_coin[1:]
    next_t = np.roll(t, -1)
    has_next = (next_same_coin & (next_t == t + 1))[sel]
    y = np.where(has_next, np.roll(lt, -1)[sel], np.nan)

    # Back to time-then-coin order, the order of load_snapshots.
    t_sel = t[sel]
    order = np.argsort(t_sel, kind="stable")
    t_out = t_sel[order]
    names = [*(V1_FEATURES if feature_set == "v1" else BASE_FEATURES), *extras]
    block = np.empty((len(names), len(order)))  # one float block, one column per row
    for i, c in enumerate(names):
        block[i] = feats[c][order]
    X = pd.DataFrame(block.T, columns=names, copy=False)

    # The meta frame is built on first use, from these arrays only (not the whole panel).
    ids = coin[sel][order]
    symbol = col["symbol"][sel][order] if "symbol" in col else None
    name = col["coin_name"][sel][order] if "coin_name" in col else None
    next_ns = np.where(has_next[order], times_ns[np.minimum(t_out + 1, len(times_ns) - 1)], _NAT)

    def make_meta() -> pd.DataFrame:
        return pd.DataFrame(
            {
                "coin_id": ids,
                "symbol": symbol,
                "coin_name": name,
                "snapshot_ts": _times(times_ns[t_out], unit),
                "t": t_out,
                "target_ts": _times(next_ns, unit),
            }
        )

    y = pd.Series(y[order], name="target_log_turnover")
    return FeatureSet(X, y, rows=by_coin[sel][order], make_meta=make_meta)


_NAT = np.iinfo(np.int64).min


def _time_codes(ts_ns: np.ndarray, times) -> tuple[np.ndarray, np.ndarray]:
    """Each row's code on the time axis (0 = oldest), and the axis as UTC nanoseconds."""
    if times is None:
        return pd.factorize(ts_ns, sort=True)
    axis = np.unique(_utc_ns(np.asarray(times, dtype="datetime64[ns]"))[0])
    t_code = np.searchsorted(axis, ts_ns)
    off = (t_code >= len(axis)) | (axis[np.minimum(t_code, len(axis) - 1)] != ts_ns)
    if len(ts_ns) and off.any():
        when = pd.Timestamp(int(ts_ns[np.flatnonzero(off)[0]]), tz="UTC")
        raise InputError(f"snapshot_ts {when} of a panel row is not on the given time axis")
    return t_code, axis


def _utc_ns(stamps) -> tuple[np.ndarray, str]:
    """Snapshot times as int64 UTC nanoseconds, and the time unit to give them back in."""
    if isinstance(stamps, np.ndarray) and stamps.dtype.kind == "M":
        return stamps.astype("datetime64[ns]").view(np.int64), "ns"
    if not (isinstance(stamps.dtype, pd.DatetimeTZDtype) and str(stamps.dtype.tz) == "UTC"):
        stamps = pd.to_datetime(stamps, utc=True)
    index = pd.DatetimeIndex(stamps)
    return index.as_unit("ns").asi8, index.unit


def _times(ns: np.ndarray, unit: str) -> pd.DatetimeIndex:
    """UTC times (``unit``) from int64 nanoseconds (NaT where ``_NAT``)."""
    return pd.DatetimeIndex(ns.view("datetime64[ns]"), tz="UTC").as_unit(unit)
