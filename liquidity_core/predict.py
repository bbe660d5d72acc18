"""Forecasts from the champion model for new rows or for a coin in the database.

A row to predict is a market snapshot in any accepted input format's column names. Its
history features (recent mean turnover, volatility, snapshots seen...) come from the
database when the coin is known (by coin name, else by symbol) and are NaN otherwise;
the forest handles the missing values. One query fetches the history of all known coins
of a request, and one more the market caps for the rank feature: never one per row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import sqlalchemy as sa

from . import db
from .errors import InputError, NotFound
from .features import HISTORY_ROWS, build_features
from .registry import LoadedModel, load_verified_model
from .settings import Settings, load_settings

LEVELS = ("Low", "Medium", "High")
#: Percentiles of the trees' predictions that bound the interval.
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


def _history(engine, coin_ids: list[str], symbols: list[str]) -> pd.DataFrame:
    from .snapshots import panel_from_rows

    stmt = db.query("model_recent_history").bindparams(
        sa.bindparam("coin_ids", expanding=True, type_=sa.String),
        sa.bindparam("symbols", expanding=True, type_=sa.String),
    )
    params = {"keep": HISTORY_ROWS, "coin_ids": coin_ids, "symbols": symbols}
    with db.transaction(engine) as conn:
        result = conn.execute(stmt, params)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    return panel_from_rows(frame)


def _caps_at(engine, ts=None) -> pd.Series:
    from .snapshots import format_ts

    with db.transaction(engine) as conn:
        rows = conn.execute(
            db.query("model_caps_at"), {"ts": None if ts is None else format_ts(ts)}
        ).all()
    return pd.Series([float(r.market_cap) for r in rows], index=[r.coin_id for r in rows])


def _ranks(caps: pd.Series, values: np.ndarray, coin_ids: list) -> np.ndarray:
    """Rank (1 = largest) of each value among ``caps``, not counting the coin itself."""
    ordered = np.sort(caps.to_numpy(dtype=float))
    greater = len(ordered) - np.searchsorted(ordered, values, side="right")
    own = caps.reindex([c if c is not None else "\0" for c in coin_ids]).to_numpy(dtype=float)
    greater = greater - (np.nan_to_num(own, nan=-np.inf) > values)
    return np.where(np.isfinite(values), 1.0 + greater, np.nan)


def _match(frame: pd.DataFrame, history: pd.DataFrame) -> list:
    """The stored coin_id of each input row (by coin_id, else symbol), or None.

    Among stored coins sharing a symbol, the one with the largest market cap wins.
    """
    if history.empty:
        return [None] * len(frame)
    last = history.drop_duplicates("coin_id", keep="last").sort_values("market_cap")
    known = set(last["coin_id"])
    by_symbol = dict(zip(last["symbol"].str.upper(), last["coin_id"], strict=True))
    out = []
    for cid, sym in zip(frame["coin_id"], frame["symbol"], strict=True):
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
    coin_ids = sorted({c for c in frame["coin_id"] if isinstance(c, str)})
    symbols = sorted({s.strip().upper() for s in frame["symbol"] if isinstance(s, str)})
    history = _history(engine, coin_ids, symbols) if (coin_ids or symbols) else pd.DataFrame()
    matched = _match(frame, history)
    n = len(frame)
    if "snapshot_ts" in frame:
        row_ts = pd.to_datetime(frame["snapshot_ts"], utc=True).fillna(_FUTURE)
    else:
        row_ts = pd.Series([_FUTURE] * n)
    new = frame.assign(coin_id=np.arange(n), snapshot_ts=row_ts.to_numpy())
    seen = np.zeros(n, dtype=int)
    parts = []
    if len(history):
        pairs = pd.DataFrame(
            {"_row": np.arange(n), "coin_id": matched, "_until": row_ts.to_numpy()}
        ).dropna(subset=["coin_id"])
        past = pairs.merge(history, on="coin_id", how="inner")
        past = past[past["snapshot_ts"] < past["_until"]]
        seen = np.bincount(past["_row"].to_numpy(dtype=int), minlength=n)
        parts.append(past.drop(columns=["coin_id", "_until"]).rename(columns={"_row": "coin_id"}))
    parts.append(new)
    panel = pd.concat(parts, ignore_index=True)
    for col in ("change_1h", "change_24h", "change_7d"):
        panel[col] = panel[col].astype(float)
    fs = build_features(panel)
    newest = ~fs.meta["coin_id"].duplicated(keep="last").to_numpy()
    X = fs.X[newest].set_axis(fs.meta.loc[newest, "coin_id"].to_numpy()).sort_index()
    X["mcap_rank"] = _ranks(_caps_at(engine), frame["market_cap"].to_numpy(dtype=float), matched)
    return X.reset_index(drop=True), seen


def predict_frame(model: LoadedModel, X: pd.DataFrame) -> dict:
    """Point forecast and tree interval (log turnover) for feature rows ``X``."""
    pipeline = model.pipeline
    Xm = X.reindex(columns=model.feature_names)
    forest = pipeline.steps[-1][1]
    if hasattr(forest, "estimators_"):
        transformed = pipeline[:-1].transform(Xm) if len(pipeline.steps) > 1 else Xm.to_numpy()
        # Validated once here, as RandomForestRegressor.predict does, not once per tree
        # (that check was 85% of a one-row request).
        transformed = np.ascontiguousarray(transformed, dtype=np.float32)
        per_tree = np.stack(
            [tree.predict(transformed, check_input=False) for tree in forest.estimators_]
        )
        point = per_tree.mean(axis=0)
        low, high = np.percentile(per_tree, INTERVAL_PERCENTILES, axis=0)
    else:
        point = pipeline.predict(Xm)
        low = high = point
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
        the model's band edges), ``interval`` ``{"low", "high"}`` (10th and 90th
        percentile of the trees, as turnover), ``model_version``, ``history_snapshots``
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
    from .formats import normalize_records

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
    history = _history(engine, [sym.lower()], [sym.upper()])
    if history.empty:
        raise NotFound(f"no stored snapshots for symbol {symbol!r}")
    last = history.drop_duplicates("coin_id", keep="last")
    exact = last[last["coin_id"] == sym.lower()]
    coin = (exact if len(exact) else last.sort_values("market_cap")).iloc[-1]
    h = history[history["coin_id"] == coin["coin_id"]]
    fs = build_features(h)
    X = fs.X.iloc[[-1]].reset_index(drop=True)
    caps = _caps_at(engine, coin["snapshot_ts"])
    X["mcap_rank"] = _ranks(caps, np.array([float(coin["market_cap"])]), [coin["coin_id"]])
    model = model or load_verified_model(settings)
    frame = pd.DataFrame([{"coin_name": coin["coin_name"], "symbol": coin["symbol"]}])
    result = _results(model, X, frame, [len(h)])[0]
    result.update(
        coin_id=coin["coin_id"],
        as_of=coin["snapshot_ts"].isoformat(),
        market_cap=float(coin["market_cap"]),
    )
    return result
