"""Forecasts from the champion model for new rows or for a coin in the database.

A row to predict is a market snapshot in any accepted input format's column names. Its
history features (recent mean turnover, volatility, snapshots seen...) come from the
database when the coin is known (by coin name, else by symbol) and are NaN otherwise;
the forest handles the missing values.

The stored history a forecast can use is the newest ``HISTORY_ROWS`` snapshot times of
every coin. Each process keeps it in memory (:class:`RecentHistory`), keyed by the
store's data version: the number of ingest ledger rows and the newest snapshot time. A
request costs one small query to read that version; the history itself is read again
only after an ingest has changed it. Snapshots are only ever written by an ingest, which
adds its ledger row in the same transaction, so a stale copy cannot be served.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .. import db, identity
from ..errors import InputError, NotFound
from ..settings import Settings, load_settings
from . import intervals
from .features import HISTORY_ROWS, MARKET_FEATURES, PANEL_COLUMNS, build_features
from .registry import LoadedModel, load_verified_model
from .snapshots import DATA_VERSION

LEVELS = ("Low", "Medium", "High")
#: Percentiles of the trees' predictions that bound the interval of a model trained before
#: calibrated intervals (migration 006); later models carry their calibration.
INTERVAL_PERCENTILES = (10.0, 90.0)
#: Stand-in time for rows given without a snapshot time: after any stored history.
_FUTURE = pd.Timestamp("2200-01-01", tz="UTC")


def level_for(log_turnover: float, band_edges) -> str:
    """Low / Medium / High for a log turnover, from a model's band edges."""
    low, high = band_edges
    if log_turnover < low:
        return LEVELS[0]
    if log_turnover < high:
        return LEVELS[1]
    return LEVELS[2]


def _input_error(errors: list[dict]) -> InputError:
    shown = "; ".join(f"row {e['index']} field {e['field']!r}: {e['problem']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    exc = InputError(f"{len(errors)} problem(s) in the input: {shown}{more}")
    exc.errors = errors
    return exc


def _ns(times) -> np.ndarray:
    """UTC times as int64 nanoseconds since the epoch."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


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
        The panel (as :func:`liquidity_core.model.snapshots.panel_from_rows` returns it), by
        column, in time-then-coin order; ``snapshot_ts`` as UTC nanoseconds.
    rows_of : dict
        coin_id -> positions of its rows (oldest first).
    by_symbol : dict
        Upper-case symbol -> coin_id; among coins sharing a symbol the largest cap wins.
    aliases : dict
        Later name slug -> the coin_id it continues (:mod:`liquidity_core.identity`).
    """

    def __init__(self, version: tuple, panel: pd.DataFrame, aliases: dict | None = None):
        self.version = version
        self.aliases = dict(aliases or {})  # coin identity (#13): later name -> coin_id
        self.columns = {c: panel[c].to_numpy() for c in panel.columns if c != "snapshot_ts"}
        self.columns["snapshot_ts"] = _ns(panel["snapshot_ts"])
        self.rows_of = {c: np.sort(i) for c, i in panel.groupby("coin_id").indices.items()}
        last = panel.drop_duplicates("coin_id", keep="last").sort_values("market_cap")
        self.by_symbol = dict(zip(last["symbol"].str.upper(), last["coin_id"], strict=True))
        self._caps: dict = {}
        if len(panel):  # the newest snapshot's caps rank every request without a time
            newest = self.columns["snapshot_ts"][-1]
            self._caps[newest] = self.caps_at(newest)
        # The market-wide features at each stored snapshot time, from every stored coin.
        self.market_times = np.unique(self.columns["snapshot_ts"])
        self.market: dict[str, np.ndarray] = {}
        if len(panel):
            fs = build_features(panel)
            first = ~fs.meta["t"].duplicated().to_numpy()
            self.market = {m: fs.X[m].to_numpy()[first] for m in MARKET_FEATURES}

    def with_market(self, X: pd.DataFrame, ts_ns: np.ndarray) -> pd.DataFrame:
        """``X`` with the market-wide features of the newest stored snapshot time at or
        before each row's time (UTC ns), and the coin's deviations from them.

        A row at a stored time gets exactly what training computed; a newer row gets
        the newest stored market (the other coins at its own time are not known yet).
        """
        if not self.market or not all(m in X.columns for m in MARKET_FEATURES):
            return X
        at = np.searchsorted(self.market_times, ts_ns, side="right") - 1
        for m in MARKET_FEATURES:
            X[m] = np.where(at >= 0, self.market[m][np.maximum(at, 0)], np.nan)
        X["log_turnover_dev_market"] = X["log_turnover"] - X["market_log_turnover"]
        X["log_mcap_rel"] = X["log_market_cap"] - X["market_log_market_cap"]
        return X

    @classmethod
    def read(cls, engine, version: tuple) -> RecentHistory:
        from .snapshots import panel_from_rows, recent_snapshots_query

        with db.transaction(engine) as conn:
            result = conn.execute(recent_snapshots_query(HISTORY_ROWS))
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
            aliases = identity.aliases(conn)  # coin identity (#13)
        return cls(version, panel_from_rows(frame), aliases)

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


_recent: dict[str, RecentHistory] = {}
_recent_lock = threading.Lock()


def recent_history(engine) -> RecentHistory:
    """This process's copy of the store's recent history, read again when it changed."""
    with db.transaction(engine) as conn:
        row = conn.execute(DATA_VERSION).one()
    version = (row.files, str(row.newest))
    key = str(engine.url)
    cached = _recent.get(key)
    if cached is not None and cached.version == version:
        return cached
    with _recent_lock:  # one reader per process; the others wait for its result
        cached = _recent.get(key)
        if cached is None or cached.version != version:
            cached = _recent[key] = RecentHistory.read(engine, version)
        return cached


def _ranks(caps: tuple[np.ndarray, dict], values: np.ndarray, coin_ids: list) -> np.ndarray:
    """Rank (1 = largest) of each value among ``caps`` (from :meth:`RecentHistory.caps_at`),
    not counting the coin itself."""
    ordered, cap_of = caps
    greater = len(ordered) - np.searchsorted(ordered, values, side="right")
    own = np.array([cap_of.get(c, np.nan) for c in coin_ids], dtype=float)
    greater = greater - (np.nan_to_num(own, nan=-np.inf) > values)
    return np.where(np.isfinite(values), 1.0 + greater, np.nan)


def _match(frame: pd.DataFrame, recent: RecentHistory) -> list:
    """The stored coin_id of each input row (by coin_id, else symbol), or None.

    Among stored coins sharing a symbol, the one with the largest market cap wins.
    """
    known, by_symbol = recent.rows_of, recent.by_symbol
    out = []
    for cid, sym in zip(frame["coin_id"], frame["symbol"], strict=True):
        cid = recent.aliases.get(cid, cid) if isinstance(cid, str) else cid  # identity #13
        if isinstance(cid, str) and cid in known:
            out.append(cid)
        elif isinstance(sym, str) and sym.strip().upper() in by_symbol:
            out.append(by_symbol[sym.strip().upper()])
        else:
            out.append(None)
    return out


def _features_for_rows(frame: pd.DataFrame, engine) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of each input row as the newest snapshot of its coin's stored history.

    Vectorized: each input row becomes a pseudo-coin (its position) whose earlier rows
    are the matched coin's stored history before the row's time.
    """
    recent = recent_history(engine)
    matched = _match(frame, recent)
    n = len(frame)
    if "snapshot_ts" in frame:
        row_ts = pd.to_datetime(frame["snapshot_ts"], utc=True).fillna(_FUTURE)
    else:
        row_ts = pd.Series([_FUTURE] * n)
    until = _ns(row_ts)
    row_of_past, positions = recent.rows_before(matched, until)
    seen = np.bincount(row_of_past, minlength=n)
    # The panel build_features sees: the stored rows, then the input rows, by column.
    stored = recent.columns
    numeric = [c for c in PANEL_COLUMNS if c not in ("coin_id", "snapshot_ts")]
    extras = sorted({c for c in (*stored, *frame.columns) if c.startswith("x_")})
    data = {
        "coin_id": np.concatenate([row_of_past, np.arange(n)]),
        "snapshot_ts": pd.to_datetime(
            np.concatenate([stored["snapshot_ts"][positions], until]), unit="ns", utc=True
        ),
    }
    for c in (*numeric, *extras):
        past = stored[c][positions] if c in stored else np.full(len(positions), np.nan)
        now = frame[c].to_numpy(dtype=float) if c in frame else np.full(n, np.nan)
        data[c] = np.concatenate([past.astype(float), now])
    panel = pd.DataFrame(data)
    fs = build_features(panel)
    newest = ~fs.meta["coin_id"].duplicated(keep="last").to_numpy()
    X = fs.X[newest].set_axis(fs.meta.loc[newest, "coin_id"].to_numpy()).sort_index()
    X["mcap_rank"] = _ranks(recent.caps_at(), frame["market_cap"].to_numpy(dtype=float), matched)
    X = recent.with_market(X.reset_index(drop=True), until)
    return X, seen


def predict_frame(model: LoadedModel, X: pd.DataFrame) -> dict:
    """Point forecast and interval (log turnover) for feature rows ``X``.

    The interval is the model's calibrated one (:mod:`.intervals`) when its version has a
    calibration, else (versions trained before it) the trees' 10th-90th percentile.
    """
    pipeline = model.pipeline
    Xm = X.reindex(columns=model.feature_names)
    forest = pipeline.steps[-1][1]
    if hasattr(forest, "estimators_"):
        transformed = pipeline[:-1].transform(Xm) if len(pipeline.steps) > 1 else Xm.to_numpy()
        # Validated once here, as RandomForestRegressor.predict does, not once per tree
        # (that check was 85% of a one-row request).
        transformed = np.ascontiguousarray(transformed, dtype=np.float32)
        # Each tree's Cython predictor directly: the estimator wrapper adds ~15 us of
        # Python per tree, which was 75% of the model's share of a one-row request.
        per_tree = np.stack(
            [
                tree.tree_.predict(transformed).reshape(len(transformed))
                for tree in forest.estimators_
            ]
        )
        if hasattr(pipeline, "anchor_of"):  # the trees predict the change from an anchor
            per_tree = per_tree + pipeline.anchor_of(Xm)
        point = per_tree.mean(axis=0)
        low, high = np.percentile(per_tree, INTERVAL_PERCENTILES, axis=0)
    else:
        point = pipeline.predict(Xm)
        low = high = point
    calibration = model.metadata.get("interval_calibration")
    if calibration:
        low, high = intervals.bounds(point, Xm[intervals.BUCKET_FEATURE].to_numpy(), calibration)
    return {"point": point, "low": low, "high": high}


def _text_or_none(values) -> list:
    return [v if isinstance(v, str) else None for v in values]


def _results(model: LoadedModel, X: pd.DataFrame, frame: pd.DataFrame, seen) -> list[dict]:
    pred = predict_frame(model, X)
    n = len(X)
    names = _text_or_none(frame["coin_name"].tolist() if "coin_name" in frame else [None] * n)
    symbols = _text_or_none(frame["symbol"].tolist() if "symbol" in frame else [None] * n)
    point = pred["point"].tolist()
    low = np.exp(pred["low"]).tolist()
    high = np.exp(pred["high"]).tolist()
    edges = model.band_edges
    return [
        {
            "coin_name": names[i],
            "symbol": symbols[i],
            "predicted_turnover": math.exp(point[i]),
            "predicted_log_turnover": point[i],
            "liquidity_level": level_for(point[i], edges),
            "interval": {"low": low[i], "high": high[i]},
            "model_version": model.version,
            "history_snapshots": int(seen[i]),
        }
        for i in range(n)
    ]


def predict_liquidity(
    rows, *, settings: Settings | None = None, model: LoadedModel | None = None
) -> list[dict]:
    """Forecast the turnover at the next snapshot for each row.

    Parameters
    ----------
    rows : dict, list of dict or pandas.DataFrame
        Market snapshots in any accepted input format's column names (CoinGecko,
        CoinMarketCap, OHLCV; case/space-insensitive). Price, 24h volume and market cap
        are required; coin, symbol, date and the changes are optional.
    settings : Settings, default=None
        Database and model folder; default :func:`load_settings`.
    model : LoadedModel, default=None
        The model to use; default the published champion (``current.json``).

    Returns
    -------
    list of dict
        One per row, in order: ``predicted_turnover`` (volume / market cap, not its
        log), ``predicted_log_turnover``, ``liquidity_level`` (Low / Medium / High from
        the model's band edges), ``interval`` ``{"low", "high"}`` (the model's
        calibrated 80% interval, as turnover), ``model_version``, ``history_snapshots``
        (stored snapshots of the coin used; 0 for an unknown coin), ``coin_name``,
        ``symbol``.

    Raises
    ------
    InputError
        When a row has a missing, non-numeric, negative or non-finite field; its
        ``errors`` attribute lists ``{"index", "field", "problem"}`` for each.
    ModelError
        When no verified model can be loaded.
    """
    from ..ingest.records import normalize_records

    settings = settings or load_settings()
    if isinstance(rows, list) and len(rows) > 1 and all(isinstance(r, Mapping) for r in rows):
        keys = list(rows[0])
        if all(list(r) == keys for r in rows):  # one format for all: detect it once
            rows = pd.DataFrame.from_records(rows, columns=keys)
    frame, errors = normalize_records(rows, require_identity=False)
    if errors:
        raise _input_error(errors)
    if frame.empty:
        raise _input_error([{"index": 0, "field": "", "problem": "no rows to predict"}])
    model = model or load_verified_model(settings)
    engine = db.get_engine(settings.database_url)
    X, seen = _features_for_rows(frame, engine)
    return _results(model, X, frame, seen)


def predict_for_symbol(
    symbol: str, *, settings: Settings, model: LoadedModel | None = None
) -> dict:
    """Forecast a stored coin's turnover at the snapshot after its newest one.

    Parameters
    ----------
    symbol : str
        Ticker symbol (case-insensitive) or coin id; among coins sharing a symbol the
        one with the largest market cap is used.
    settings : Settings
    model : LoadedModel, default=None
        Default: the published champion.

    Returns
    -------
    dict
        As :func:`predict_liquidity`, plus ``coin_id``, ``as_of`` (the newest stored
        snapshot time of the coin) and ``market_cap``.

    Raises
    ------
    NotFound
        When no stored snapshot has this symbol.
    """
    engine = db.get_engine(settings.database_url)
    sym = str(symbol).strip()
    recent = recent_history(engine)
    by_id = recent.aliases.get(sym.lower(), sym.lower())  # coin identity (#13)
    coin_id = by_id if by_id in recent.rows_of else recent.by_symbol.get(sym.upper())
    if coin_id is None:
        raise NotFound(f"no stored snapshots for symbol {symbol!r}")
    h = recent.coin_rows(coin_id)
    coin = h.iloc[-1]
    fs = build_features(h)
    X = fs.X.iloc[[-1]].reset_index(drop=True)
    caps = recent.caps_at(_ns([coin["snapshot_ts"]])[0])
    X["mcap_rank"] = _ranks(caps, np.array([float(coin["market_cap"])]), [coin["coin_id"]])
    X = recent.with_market(X, _ns([coin["snapshot_ts"]]))
    model = model or load_verified_model(settings)
    frame = pd.DataFrame([{"coin_name": coin["coin_name"], "symbol": coin["symbol"]}])
    result = _results(model, X, frame, [len(h)])[0]
    result.update(
        coin_id=coin["coin_id"],
        as_of=coin["snapshot_ts"].isoformat(),
        market_cap=float(coin["market_cap"]),
    )
    return result
