"""Training stage 1: load the snapshot panel, check it, and stage its features.

:func:`prepare_data` loads the panel, builds features, checks there are enough snapshots
for the folds and the holdout (:class:`NotEnoughData` otherwise) and writes them to the
run's staging folder (:mod:`.staging`) for the next stages.
"""

from __future__ import annotations

import hashlib
import logging
import time

import numpy as np
import pandas as pd

from liquidity_core.errors import NotEnoughData
from liquidity_core.features.build import build_features
from liquidity_core.features.panel_stream import (
    CHUNK_ROWS,
    SCAN_COLUMNS,
    fingerprinted,
    frame_chunks,
    scan,
    stored_chunks,
    windowed_features,
)
from liquidity_core.learn.splits import holdout_split
from liquidity_core.registry import champion as registry
from liquidity_core.settings import Settings
from liquidity_core.store import db
from liquidity_core.training.candidates import MAX_SEARCH_ROWS
from liquidity_core.training.staging import remove_stale_staging, staging_dir, write_json

#: The training stages log as one logger, the cycle's, so that one switch (tests,
#: bench/retrain.py) follows a whole run.
log = logging.getLogger("liquidity_core.training.cycle")

GAP = 1  # snapshot times between training and validation; the target is one step ahead


def data_fingerprint(panel: pd.DataFrame) -> str:
    """sha256 over the panel's rows, independent of row order."""
    if panel.empty:
        return hashlib.sha256(b"").hexdigest()
    ordered = panel.sort_values(["snapshot_ts", "coin_id"]).reset_index(drop=True)
    ordered = ordered[sorted(ordered.columns)]
    hashed = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


# --- stage 1: data ---------------------------------------------------------------------


def load_panel(settings: Settings, *, until=None) -> pd.DataFrame:
    """All snapshots up to ``until`` (inclusive; None = everything) from the database."""
    from liquidity_core.store.snapshots import load_snapshots

    engine = db.get_engine(settings.database_url)
    db.require_schema(engine)
    return load_snapshots(engine, until=until)


def check_panel(panel: pd.DataFrame, settings: Settings):
    """Build features and the tuning/holdout split, or raise :class:`NotEnoughData`.

    Returns
    -------
    features : FeatureSet
    tuning, holdout : arrays of int
        Row positions of the tuning rows and holdout rows (finite targets only).
    """
    if panel.empty:
        raise NotEnoughData(
            "0 snapshots in the database: ingest market data first (`liquidity ingest`)"
        )
    fs = build_features(panel)
    has_target = np.isfinite(fs.y.to_numpy())
    n_times = int(fs.meta["t"].max()) + 1
    first, last = fs.meta["snapshot_ts"].iloc[0], fs.meta["snapshot_ts"].iloc[-1]
    try:
        tuning, holdout = holdout_split(
            fs.meta["t"].to_numpy(),
            has_target,
            holdout_snapshots=settings.holdout_snapshots,
            gap=GAP,
            n_splits=settings.cv_splits,
        )
    except NotEnoughData as exc:
        raise NotEnoughData(
            f"not enough data to train: {len(panel)} rows in {n_times} snapshots "
            f"({first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC); {exc}"
        ) from None
    return fs, tuning, holdout


def prepare_data(
    settings: Settings,
    *,
    run_id: str,
    until=None,
    panel=None,
    max_tuning_rows: int = MAX_SEARCH_ROWS,
    chunk_rows: int = CHUNK_ROWS,
) -> dict:
    """Stage 1: read the panel, check it, and stage the features the next stages use.

    Memory is bounded by the work, not by the data: the panel is read twice in
    time-ordered chunks (:mod:`liquidity_core.features.panel_stream`), once (four columns)
    for the snapshot times and targets, once (every column) for the features over a
    sliding window and the fingerprint,
    and only the rows the next stages use are kept: at most ``max_tuning_rows`` tuning
    rows, drawn at random (seeded) from all of them, and every holdout row.

    Parameters
    ----------
    settings : Settings
    run_id : str
        Key of the staging folder.
    until : datetime or str, default=None
        Last snapshot time to use (the DAG passes its data interval end).
    panel : pandas.DataFrame, default=None
        Use this panel instead of the database (tests, benchmarks).
    max_tuning_rows : int, default=MAX_SEARCH_ROWS
        Stage at most this many tuning rows.
    chunk_rows : int, default=CHUNK_ROWS
        Rows read per chunk.

    Returns
    -------
    dict
        Small JSON-able summary: run_id, staging, rows, snapshots, window, fingerprint.

    Raises
    ------
    NotEnoughData
        Too few snapshots for ``cv_splits`` folds plus the holdout; names the counts.
    """
    started = time.perf_counter()
    registry.reconcile_pointer(settings)
    remove_stale_staging(settings)
    chunks = _chunk_source(settings, until=until, panel=panel, chunk_rows=chunk_rows)
    seen = scan(chunks(SCAN_COLUMNS))
    tuning_t, holdout_t = _split_times(seen, settings)
    n_tuning = int(seen.targets_at[tuning_t].sum())
    picked = _tuning_sample(n_tuning, max_tuning_rows, settings.random_seed)
    fingerprint = hashlib.sha256()
    X, y, meta, tuning, holdout = _kept_rows(
        fingerprinted(chunks(), fingerprint), tuning_t, holdout_t, picked
    )
    stage = staging_dir(settings, run_id)
    stage.mkdir(parents=True, exist_ok=True)
    summary = {
        "run_id": run_id,
        "staging": str(stage),
        "n_rows": seen.n_rows,
        "n_snapshots": len(seen.times),
        "n_coins": seen.n_coins,
        "n_tuning_rows": n_tuning,
        "n_staged_tuning_rows": int(len(tuning)),
        "n_holdout_rows": int(len(holdout)),
        "data_window_start": seen.times[0].isoformat(),
        "data_window_end": seen.times[-1].isoformat(),
        "data_fingerprint": fingerprint.hexdigest(),
    }
    pd.to_pickle(
        {"X": X, "y": y, "meta": meta, "tuning": tuning, "holdout": holdout},
        stage / "data.pkl",
    )
    write_json(stage / "data.json", summary)
    log.info(
        "prepared %d rows, %d snapshots (%d tuning rows, %d staged, %d holdout rows) in %.1fs",
        summary["n_rows"],
        summary["n_snapshots"],
        n_tuning,
        len(tuning),
        len(holdout),
        time.perf_counter() - started,
    )
    return summary


def _chunk_source(settings: Settings, *, until, panel, chunk_rows: int):
    """A function that reads the panel afresh, in time-ordered chunks each call: from
    ``panel`` when given (whole chunks), else from the database (its schema checked
    first; only ``columns`` of it when given, see :func:`stored_chunks`)."""
    if panel is None:
        engine = db.get_engine(settings.database_url)
        db.require_schema(engine)

        def chunks(columns=None):
            return stored_chunks(engine, until=until, chunk_rows=chunk_rows, columns=columns)

    else:

        def chunks(columns=None):
            return frame_chunks(panel, chunk_rows=chunk_rows)

    return chunks


def _tuning_sample(n_tuning: int, max_tuning_rows: int, seed) -> np.ndarray | None:
    """The ordinals (sorted) of the tuning rows to stage, drawn at random with ``seed``;
    None when every tuning row is staged."""
    if n_tuning <= max_tuning_rows:
        return None
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n_tuning, size=max_tuning_rows, replace=False))
    log.info("staging %d of %d tuning rows (random)", max_tuning_rows, n_tuning)
    return picked


def _kept_rows(chunks, tuning_t, holdout_t, picked: np.ndarray | None):
    """The rows of ``chunks`` (the whole panel, time-ordered) with a target at the tuning
    times (only the ``picked`` ordinals, when given) and at the holdout times: ``X``
    (extras last, sorted), ``y``, ``meta`` and the positions of the tuning and of the
    holdout rows in them."""
    parts, counted = [], 0
    for fs in windowed_features(chunks):
        t = fs.meta["t"].to_numpy()
        has = np.isfinite(fs.y.to_numpy())
        tune = has & np.isin(t, tuning_t)
        hold = has & np.isin(t, holdout_t)
        if picked is not None:
            ordinal = counted + np.cumsum(tune) - 1
            counted += int(tune.sum())
            at = np.minimum(np.searchsorted(picked, ordinal), len(picked) - 1)
            tune &= picked[at] == ordinal
        keep = tune | hold
        parts.append((fs.X[keep], fs.y[keep], fs.meta[keep], tune[keep], hold[keep]))
    X = pd.concat([p[0] for p in parts], ignore_index=True)
    extras = sorted(c for c in X.columns if c.startswith("x_"))
    X = X[[*[c for c in X.columns if not c.startswith("x_")], *extras]]
    y = pd.concat([p[1] for p in parts], ignore_index=True)
    meta = pd.concat([p[2] for p in parts], ignore_index=True)
    tuning = np.flatnonzero(np.concatenate([p[3] for p in parts]))
    holdout = np.flatnonzero(np.concatenate([p[4] for p in parts]))
    return X, y, meta, tuning, holdout


def _split_times(seen, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """The tuning and holdout snapshot time codes, or :class:`NotEnoughData`."""
    if seen.n_rows == 0:
        raise NotEnoughData(
            "0 snapshots in the database: ingest market data first (`liquidity ingest`)"
        )
    n_times = len(seen.times)
    try:
        return holdout_split(
            np.arange(n_times),
            seen.targets_at > 0,
            holdout_snapshots=settings.holdout_snapshots,
            gap=GAP,
            n_splits=settings.cv_splits,
        )
    except NotEnoughData as exc:
        first, last = seen.times[0], seen.times[-1]
        raise NotEnoughData(
            f"not enough data to train: {seen.n_rows} rows in {n_times} snapshots "
            f"({first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC); {exc}"
        ) from None
