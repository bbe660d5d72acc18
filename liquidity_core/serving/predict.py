"""Forecasts from the champion model for new rows or for a coin in the database.

A row to predict is a market snapshot in any accepted input format's column names. Its
history features (recent mean turnover, volatility, snapshots seen...) come from the
database when the coin is known (by coin name, else by symbol) and are NaN otherwise;
the forest handles the missing values.

The stored history a forecast can use is the newest ``HISTORY_ROWS`` snapshot times of
every coin, kept in memory per process by :mod:`liquidity_core.serving.recent`; a request
costs one small query to check that it is current. A row given without a snapshot time is
taken as the next snapshot: the newest stored time plus the panel's cadence.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from liquidity_core.errors import InputError, NotFound
from liquidity_core.features.build import PANEL_COLUMNS, build_features, own_features
from liquidity_core.features.time_axis import NAT_NS
from liquidity_core.inputs.records import frame_columns, request_columns
from liquidity_core.learn import intervals
from liquidity_core.registry.champion import LoadedModel, load_verified_model
from liquidity_core.serving import numpy_path as lean
from liquidity_core.serving.recent import RecentHistory, cap_ranks, recent_history
from liquidity_core.settings import Settings, load_settings
from liquidity_core.store import db

LEVELS = ("Low", "Medium", "High")
#: Percentiles of the trees' predictions that bound the interval of a model trained before
#: calibrated intervals (migration 006); later models carry their calibration.
INTERVAL_PERCENTILES = (10.0, 90.0)


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


def _match(frame, recent: RecentHistory) -> list:
    """The stored coin_id of each input row (by coin_id, else symbol), or None.

    Among stored coins sharing a symbol, the one with the largest market cap wins.
    """
    known, by_symbol = recent.rows_of, recent.by_symbol
    out = []
    for cid, sym in zip(frame["coin_id"], frame["symbol"], strict=True):
        cid = recent.aliases.get(cid, cid) if isinstance(cid, str) else cid  # coin identity
        if isinstance(cid, str) and cid in known:
            out.append(cid)
        elif isinstance(sym, str) and sym.strip().upper() in by_symbol:
            out.append(by_symbol[sym.strip().upper()])
        else:
            out.append(None)
    return out


def features_for_rows(frame, engine) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of each input row as the newest snapshot of its coin's stored history.

    ``frame`` is checked input rows: a frame of :func:`normalize_records` or its columns
    as arrays (:func:`~liquidity_core.inputs.records.request_columns`).

    Vectorized: each input row becomes a pseudo-coin (its position) whose earlier rows
    are the matched coin's stored history before the row's time. The panel is passed to
    :func:`build_features` as plain arrays, and only the input rows are computed.

    Returns ``(X, seen)``: the feature rows and the stored snapshots each row used.
    """
    X, seen = _feature_columns(frame, engine)
    return _frame(X), seen


def _feature_columns(frame, engine) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`features_for_rows` as ``{feature: values}``, without building the frame.

    The features a row takes from the other coins at its time (the market-cap rank and
    the market-wide ones) come from the store, so the pseudo-panel computes only each
    row's own (:func:`~liquidity_core.features.build.own_features`); with nothing stored,
    its market is the input rows' own, as :func:`build_features` computes it.
    """
    if isinstance(frame, pd.DataFrame):
        frame = frame_columns(frame)
    recent = recent_history(engine)
    matched = _match(frame, recent)
    n = len(frame["coin_id"])
    until = np.full(n, recent.next_time())
    if "snapshot_ts" in frame:
        given = frame["snapshot_ts"]
        until = np.where(given == NAT_NS, until, given)
    row_of_past, positions = recent.rows_before(matched, until)
    seen = np.bincount(row_of_past, minlength=n)
    # The panel build_features sees: the stored rows, then the input rows, by column.
    stored = recent.columns
    numeric = [c for c in PANEL_COLUMNS if c not in ("coin_id", "snapshot_ts")]
    extras = sorted({c for c in (*stored, *frame) if c.startswith("x_")})
    data = {
        "coin_id": np.concatenate([row_of_past, np.arange(n)]),
        "snapshot_ts": np.concatenate([stored["snapshot_ts"][positions], until]).view(
            "datetime64[ns]"
        ),
    }
    for c in (*numeric, *extras):
        past = stored[c][positions] if c in stored else np.full(len(positions), np.nan)
        now = np.asarray(frame[c], dtype=float) if c in frame else np.full(n, np.nan)
        data[c] = np.concatenate([past.astype(float), now])
    wanted = np.zeros(len(positions) + n, dtype=bool)
    wanted[len(positions) :] = True
    # The windows count snapshot times of the store (the coin's own rows may have gaps).
    axis = np.union1d(recent.market_times, until).view("datetime64[ns]")
    if recent.market:  # the market-wide features come from the store (with_market)
        X = own_features(data, rows=wanted, times=axis)  # input row order
    else:
        fs = build_features(data, rows=wanted, times=axis)
        back = np.argsort(fs.rows, kind="stable")  # input row order
        values = fs.X.to_numpy()[back]
        X = {c: values[:, i] for i, c in enumerate(fs.X.columns)}
    caps = np.asarray(frame["market_cap"], dtype=float)
    X["mcap_rank"] = cap_ranks(recent.caps_at(), caps, matched)
    recent.with_market(X, until)
    return X, seen


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A float frame from equal-length column arrays, built as one block."""
    block = np.empty((len(columns), len(next(iter(columns.values())))))
    for i, values in enumerate(columns.values()):
        block[i] = values
    return pd.DataFrame(block.T, columns=list(columns), copy=False)


def predict_frame(model: LoadedModel, X) -> dict:
    """Point forecast and interval (log turnover) for feature rows ``X`` (a DataFrame, or
    ``{feature: values}`` of equal-length float arrays).

    The interval is the model's calibrated one (:mod:`liquidity_core.learn.intervals`)
    when its version has a calibration, else (versions trained before it) the trees'
    10th-90th percentile.
    """
    pipeline = model.pipeline
    names = model.feature_names
    forest = pipeline.steps[-1][1]
    calibration = model.metadata.get("interval_calibration")
    if hasattr(forest, "estimators_"):
        # The input is checked once here (the model's columns, as float64), and the steps
        # before the forest are applied with NumPy (serving.numpy_path): scikit-learn's
        # own checks, once per step, were most of a one-row request.
        values = _model_columns(X, names)
        transformed = lean.transform(pipeline, values, names)
        transformed = np.ascontiguousarray(transformed, dtype=np.float32)
        # The trees' own node tables, without scikit-learn's per-tree calls (the
        # estimator wrapper, then the Cython predictor's checks, were most of the
        # model's share of a one-row request).
        per_tree = lean.tree_values(forest, transformed)
        if hasattr(pipeline, "anchor_of"):  # the trees predict the change from an anchor
            per_tree *= pipeline.blend  # the share of the change that CV chose
            per_tree += lean.anchor_of(pipeline, values, names)
        point = per_tree.mean(axis=0)
        if calibration:  # the calibrated interval replaces the trees' percentiles
            columns = {c: values[:, i] for i, c in enumerate(names)}
            low, high = intervals.bounds_for(point, columns, calibration)
        else:
            low, high = np.percentile(per_tree, INTERVAL_PERCENTILES, axis=0)
        return {"point": point, "low": low, "high": high}
    if not isinstance(X, pd.DataFrame):
        X = _frame(X)
    Xm = X if list(X.columns) == names else X.reindex(columns=names)
    point = pipeline.predict(Xm)
    low = high = point
    if calibration:
        low, high = intervals.bounds_for(point, Xm, calibration)
    return {"point": point, "low": low, "high": high}


def _model_columns(X, names: list[str]) -> np.ndarray:
    """``X.reindex(columns=names).to_numpy(dtype=float)``: the model's features in its
    order, NaN for a feature ``X`` lacks, without building the reindexed frame. ``X`` may
    be ``{feature: values}`` of float arrays too."""
    if not isinstance(X, pd.DataFrame):
        values = np.empty((len(next(iter(X.values()))), len(names)))
        for i, c in enumerate(names):
            values[:, i] = X[c] if c in X else np.nan
        return values
    if list(X.columns) == names:
        return X.to_numpy(dtype=float)
    at = X.columns.get_indexer(names)
    try:
        values = X.to_numpy(dtype=float)[:, np.maximum(at, 0)]
    except (TypeError, ValueError):  # a column the model does not use is not a number
        return X.reindex(columns=names).to_numpy(dtype=float)
    if (at < 0).any():
        values[:, at < 0] = np.nan
    return values


def _text_or_none(values) -> list:
    return [v if isinstance(v, str) else None for v in values]


def _results(model: LoadedModel, X, frame, seen) -> list[dict]:
    pred = predict_frame(model, X)
    n = len(seen)
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
    settings = settings or load_settings()
    frame, errors = request_columns(rows, require_identity=False)
    if errors:
        raise _input_error(errors)
    if not len(frame["coin_id"]):
        raise _input_error([{"index": 0, "field": "", "problem": "no rows to predict"}])
    model = model or load_verified_model(settings)
    engine = db.get_engine(settings.database_url)
    X, seen = _feature_columns(frame, engine)
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
    by_id = recent.aliases.get(sym.lower(), sym.lower())  # coin identity
    coin_id = by_id if by_id in recent.rows_of else recent.by_symbol.get(sym.upper())
    if coin_id is None:
        raise NotFound(f"no stored snapshots for symbol {symbol!r}")
    h = recent.coin_arrays(coin_id)
    n = len(h["coin_id"])
    newest = np.zeros(n, dtype=bool)
    newest[-1] = True
    X = own_features(h, rows=newest)  # the rank and the market: the store's, below
    ts_ns = h["snapshot_ts"][-1:].view(np.int64)
    cap = float(h["market_cap"][-1])
    X["mcap_rank"] = cap_ranks(recent.caps_at(ts_ns[0]), np.array([cap]), [coin_id])
    recent.with_market(X, ts_ns)
    model = model or load_verified_model(settings)
    frame = {"coin_name": h["coin_name"][-1:], "symbol": h["symbol"][-1:]}
    result = _results(model, X, frame, [n])[0]
    as_of = pd.Timestamp(int(ts_ns[0]), tz="UTC")
    result.update(coin_id=coin_id, as_of=as_of.isoformat(), market_cap=cap)
    return result
