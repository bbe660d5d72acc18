"""Stored forecasts: the champion scores every new snapshot time once, and serving reads them.

:func:`forecast_new_snapshots` is the forecast task (``liquidity forecast``, the
``liquidity_forecast`` DAG). The champion forecasts the next snapshot of every coin at
each stored snapshot time it has not scored yet, from the newest snapshot of its own
training panel (``data_window_end``, whose target it never saw) onward, so every stored
forecast is out of sample. Each becomes one ``forecasts`` row, inserted with
``ON CONFLICT DO NOTHING``: a re-run, or two runs at once, store nothing twice.

The features are :func:`~liquidity_core.features.build.build_features` on the stored
panel (coin identity applied) over the newest ``HISTORY_ROWS`` snapshot times up to the
scored time, the window the serving history holds, and the forecast and its interval are
:func:`~liquidity_core.serving.predict.predict_frame`: the one feature implementation and
the one predict path that serving uses.

:func:`forecast_for_symbol` serves a coin: the stored forecast when the served model
stored one for the newest snapshot, else a computed one; ``"source"`` says which.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import sqlalchemy as sa

from liquidity_core.features.build import HISTORY_ROWS
from liquidity_core.features.panel_stream import stored_chunks, windowed_features
from liquidity_core.registry.champion import (
    LoadedModel,
    load_verified_model,
    read_current_pointer,
    utc_now_iso,
)
from liquidity_core.serving.predict import INTERVAL_PERCENTILES, level_for, predict_frame
from liquidity_core.settings import Settings
from liquidity_core.store import db
from liquidity_core.store.schema import forecasts, market_snapshots
from liquidity_core.store.snapshots import SNAPSHOT_TIMES, stored_time, to_utc

log = logging.getLogger(__name__)

#: Rows per INSERT batch.
_BATCH = 5000
#: Stored-forecast answers kept per data version at most (a few model versions' coins).
_KEPT_ANSWERS = 50_000

_f = forecasts
_of_version = _f.c.model_version == sa.bindparam("model_version")
#: The snapshot times a model version has forecast.
_SCORED_TIMES = sa.select(_f.c.snapshot_ts).distinct().where(_of_version)
#: How many forecasts a model version has stored.
_COUNT = sa.select(sa.func.count()).select_from(_f).where(_of_version)
#: The stored forecast of one model version for one coin at one snapshot time.
_STORED_ONE = sa.select(_f).where(
    _of_version,
    _f.c.coin_id == sa.bindparam("coin_id"),
    _f.c.snapshot_ts == sa.bindparam("snapshot_ts"),
)
_m = market_snapshots
#: Every stored forecast of a coin, oldest first, with the time of the snapshot that came
#: next (``next_ts``, NULL while it has not arrived).
_OF_COIN = (
    sa.select(
        *(
            c
            for c in _f.c
            if c.name not in ("coin_id", "level", "current_log_turnover", "history_snapshots")
        ),
        sa.select(sa.func.min(_m.c.snapshot_ts))
        .where(_m.c.snapshot_ts > _f.c.snapshot_ts)
        .scalar_subquery()
        .label("next_ts"),
    )
    .where(_f.c.coin_id == sa.bindparam("coin_id"))
    .order_by(_f.c.snapshot_ts, _f.c.created_at)
)


def _times(conn, stmt, **params) -> list[pd.Timestamp]:
    rows = conn.execute(stmt, params).fetchall()
    return sorted(to_utc(r[0]) for r in rows)


def _default_nominal() -> float:
    low, high = INTERVAL_PERCENTILES
    return (high - low) / 100.0


def features_at(engine, times: list[pd.Timestamp], all_times) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features ``X`` and ``meta`` of every stored coin at each of ``times`` (stored times).

    ``all_times`` are the store's snapshot times, oldest first. The panel starts
    ``HISTORY_ROWS - 1`` snapshot times before the first of ``times`` and is read in
    chunks with the sliding window of :func:`.panel_stream.windowed_features`: each time's
    features come from the window the serving history holds when that time is the
    newest, and memory is bounded by that window, not by the number of times.
    """
    all_times = list(all_times)
    first = all_times.index(times[0])
    since = all_times[max(0, first - (HISTORY_ROWS - 1))]
    wanted = pd.DatetimeIndex(times)
    X, meta = [], []
    for fs in windowed_features(stored_chunks(engine, since=since, until=times[-1])):
        keep = fs.meta["snapshot_ts"].isin(wanted).to_numpy()
        X.append(fs.X[keep])
        meta.append(fs.meta[keep])
    return pd.concat(X, ignore_index=True), pd.concat(meta, ignore_index=True)


def forecast_rows(
    model: LoadedModel, X: pd.DataFrame, meta: pd.DataFrame, all_times, dialect: str
) -> list[dict]:
    """``forecasts`` rows of ``model`` for feature rows ``X`` (``meta`` aligned)."""
    if not len(X):
        return []
    pred = predict_frame(model, X)
    calibration = model.metadata.get("interval_calibration") or {}
    nominal = float(calibration.get("nominal") or _default_nominal())
    # Where the next snapshot was expected: one more step of the panel's latest cadence.
    all_times = list(all_times)
    position = {t: i for i, t in enumerate(all_times)}
    expected = {}
    for t in meta["snapshot_ts"].drop_duplicates():
        i = position[t]
        expected[t] = None if i == 0 else t + (t - all_times[i - 1])
    created = utc_now_iso()
    edges = model.band_edges
    stored = {t: stored_time(t, dialect) for t in expected}
    stored_target = {t: None if e is None else stored_time(e, dialect) for t, e in expected.items()}
    current = X["log_turnover"].to_numpy(dtype=float)
    seen = np.nan_to_num(X["snapshots_seen"].to_numpy(dtype=float)).astype(int).tolist()
    point, low, high = (pred[k].astype(float).tolist() for k in ("point", "low", "high"))
    times, coins = meta["snapshot_ts"].tolist(), meta["coin_id"].astype(str).tolist()
    rows = []
    for i in range(len(X)):
        if not math.isfinite(point[i]):
            continue
        rows.append(
            {
                "model_version": model.version,
                "coin_id": coins[i],
                "snapshot_ts": stored[times[i]],
                "target_ts": stored_target[times[i]],
                "predicted_log_turnover": point[i],
                "lower_log_turnover": low[i],
                "upper_log_turnover": high[i],
                "nominal_level": nominal,
                "level": level_for(point[i], edges),
                "current_log_turnover": float(current[i]) if np.isfinite(current[i]) else None,
                "history_snapshots": seen[i],
                "created_at": created,
            }
        )
    return rows


def store_rows(engine, rows: list[dict], model_version: str) -> int:
    """Insert forecast rows of ``model_version``; rows already stored are left as they are.

    Returns the number of rows this call added.
    """
    key = {"model_version": model_version}
    with db.transaction(engine) as conn:
        before = int(conn.execute(_COUNT, key).scalar_one())
        insert = db.insert_once(conn, _f)
        for start in range(0, len(rows), _BATCH):
            conn.execute(insert, rows[start : start + _BATCH])
        return int(conn.execute(_COUNT, key).scalar_one()) - before


def forecast_new_snapshots(settings: Settings, *, model: LoadedModel | None = None) -> dict:
    """Score every stored snapshot time the champion has not scored yet, and store it.

    Parameters
    ----------
    settings : Settings
    model : LoadedModel, default=None
        The model to score with; default the published champion (verified).

    Returns
    -------
    dict
        ``model_version`` (None, with a ``reason``, when no model has been published
        yet), ``snapshots`` (times scored by this call), ``rows`` (forecasts
        stored by this call), ``first`` and ``last`` (ISO times scored, or None) and
        ``drift`` (the drift summary of :func:`liquidity_core.monitoring.drift.record_drift`,
        or the reason it could not be computed).

    Raises
    ------
    ModelError
        When the published champion cannot be loaded or fails verification.
    DatabaseError, DatabaseUnavailable
        When the store fails.
    """
    engine = db.get_engine(settings.database_url)
    db.require_schema(engine)
    if model is None and read_current_pointer(settings.model_dir) is None:
        reason = "no model has been published yet: nothing to forecast with"
        return {"model_version": None, "snapshots": 0, "rows": 0, "reason": reason}
    model = model or load_verified_model(settings)
    start = model.metadata.get("data_window_end")
    with db.transaction(engine, readonly=True) as conn:
        all_times = _times(conn, SNAPSHOT_TIMES)
        scored = set(_times(conn, _SCORED_TIMES, model_version=model.version))
    since = to_utc(start) if start else (all_times[-1] if all_times else None)
    todo = [t for t in all_times if since is not None and t >= since and t not in scored]
    result = {"model_version": model.version, "snapshots": 0, "rows": 0, "first": None}
    result["last"] = None
    if not todo:
        return dict(result, drift=None)
    X, meta = features_at(engine, todo, all_times)
    rows = forecast_rows(model, X, meta, all_times, db.dialect_of(engine))
    stored = store_rows(engine, rows, model.version)
    result.update(
        snapshots=len(todo), rows=stored, first=todo[0].isoformat(), last=todo[-1].isoformat()
    )
    log.info(
        "%s forecast %d snapshot(s) %s .. %s: %d rows",
        model.version,
        len(todo),
        result["first"],
        result["last"],
        result["rows"],
    )
    result["drift"] = _drift(engine, model, X, meta)
    return result


def _drift(engine, model: LoadedModel, X: pd.DataFrame, meta: pd.DataFrame) -> dict:
    """Drift of the snapshots just forecast; information only, it never fails the task."""
    from liquidity_core.monitoring import drift

    try:
        return drift.record_drift(engine, model, X, meta)
    except Exception as exc:  # noqa: BLE001 - drift never blocks forecasting or ingest
        log.warning("drift not computed for %s: %s", model.version, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


# --- serving ------------------------------------------------------------------------------


def stored_forecast(symbol: str, *, settings: Settings, model_version: str) -> dict | None:
    """The stored forecast of ``model_version`` for a coin at the store's newest snapshot.

    The coin is found as :func:`~liquidity_core.serving.predict.predict_for_symbol` finds it
    (coin id or alias, else the symbol's largest coin). Returns None when the coin's newest
    snapshot is not the store's newest or nothing is stored for it; otherwise the shape of
    ``predict_for_symbol`` with ``"source": "stored"``.
    """
    from liquidity_core.serving.recent import recent_history

    engine = db.get_engine(settings.database_url)
    recent = recent_history(engine)
    sym = str(symbol).strip()
    by_id = recent.aliases.get(sym.lower(), sym.lower())
    coin_id = by_id if by_id in recent.rows_of else recent.by_symbol.get(sym.upper())
    if coin_id is None:
        return None
    # A stored forecast is written once and never changed, and the rest of the answer is
    # of this data version: an answer found is kept with the history, which a new data
    # version replaces. "Not stored" is not kept: the forecast task may store it next.
    kept = recent.stored_answers.get((model_version, coin_id))
    if kept is not None:
        return {**kept, "interval": dict(kept["interval"])}
    # Plain arrays and one raw read: this is the request path (GET .../prediction).
    at = recent.rows_of[coin_id][-1]
    column = recent.columns
    newest = int(column["snapshot_ts"][-1])
    if int(column["snapshot_ts"][at]) != newest:
        return None
    as_of = pd.Timestamp(newest, tz="UTC")
    params = {
        "model_version": model_version,
        "coin_id": coin_id,
        "snapshot_ts": stored_time(as_of, db.dialect_of(engine)),
    }
    found = db.probe_row(engine.url, _STORED_ONE, params)
    if found is None:
        return None
    row = dict(zip(_STORED_ONE.selected_columns.keys(), found, strict=True))
    point = float(row["predicted_log_turnover"])
    answer = {
        "coin_name": column["coin_name"][at],
        "symbol": column["symbol"][at],
        "predicted_turnover": math.exp(point),
        "predicted_log_turnover": point,
        "liquidity_level": row["level"],
        "interval": {
            "low": math.exp(float(row["lower_log_turnover"])),
            "high": math.exp(float(row["upper_log_turnover"])),
        },
        "model_version": row["model_version"],
        "history_snapshots": int(row["history_snapshots"]),
        "coin_id": coin_id,
        "as_of": as_of.isoformat(),
        "market_cap": float(column["market_cap"][at]),
        "source": "stored",
    }
    if len(recent.stored_answers) >= _KEPT_ANSWERS:
        recent.stored_answers.clear()
    recent.stored_answers[(model_version, coin_id)] = answer
    return {**answer, "interval": dict(answer["interval"])}


def forecast_for_symbol(
    symbol: str, *, settings: Settings, model: LoadedModel | None = None
) -> dict:
    """A stored coin's forecast: the stored one when it exists, else computed.

    Parameters
    ----------
    symbol : str
        Ticker symbol (case-insensitive) or coin id.
    settings : Settings
    model : LoadedModel, default=None
        The served model; default the published champion.

    Returns
    -------
    dict
        As :func:`~liquidity_core.serving.predict.predict_for_symbol`, plus ``source``:
        ``"stored"`` (the forecast task's row for this model and the newest snapshot) or
        ``"computed"``.

    Raises
    ------
    NotFound
        When no stored snapshot has this symbol.
    """
    from liquidity_core.serving.predict import predict_for_symbol

    model = model or load_verified_model(settings)
    stored = stored_forecast(symbol, settings=settings, model_version=model.version)
    if stored is not None:
        return stored
    result = predict_for_symbol(symbol, settings=settings, model=model)
    result["source"] = "computed"
    return result


def coin_forecasts(settings: Settings, coin_id: str) -> list[dict]:
    """Every stored forecast for a coin, oldest first, one per snapshot time (the latest
    stored), as ``{"snapshot_ts", "target_ts", "model_version", "predicted", "low", "high"}``
    in turnover (not log); ``target_ts`` is the snapshot that came next, or the expected
    time while it has not arrived."""
    engine = db.get_engine(settings.database_url)
    with db.transaction(engine, readonly=True) as conn:
        rows = conn.execute(_OF_COIN, {"coin_id": coin_id}).fetchall()
    latest: dict = {}
    for r in rows:
        latest[to_utc(r.snapshot_ts)] = r
    out = []
    for ts, r in sorted(latest.items()):
        target = r.next_ts if r.next_ts is not None else r.target_ts
        out.append(
            {
                "snapshot_ts": ts,
                "target_ts": None if target is None else to_utc(target),
                "arrived": r.next_ts is not None,
                "model_version": r.model_version,
                "predicted": math.exp(float(r.predicted_log_turnover)),
                "low": math.exp(float(r.lower_log_turnover)),
                "high": math.exp(float(r.upper_log_turnover)),
            }
        )
    return out
