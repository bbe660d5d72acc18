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

from .. import db
from ..errors import NotEnoughData
from ..settings import Settings
from . import registry
from .features import build_features
from .splits import holdout_split
from .staging import remove_stale_staging, staging_dir, write_json

#: The training stages log as one logger, the cycle's, so that one switch (tests,
#: bench/retrain.py) follows a whole run.
log = logging.getLogger("liquidity_core.model.train")

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
    from .snapshots import load_snapshots

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


def prepare_data(settings: Settings, *, run_id: str, until=None, panel=None) -> dict:
    """Stage 1: load the panel, check it, and stage features for the next stages.

    Parameters
    ----------
    settings : Settings
    run_id : str
        Key of the staging folder.
    until : datetime or str, default=None
        Last snapshot time to use (the DAG passes its data interval end).
    panel : pandas.DataFrame, default=None
        Use this panel instead of the database (tests, benchmarks).

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
    if panel is None:
        panel = load_panel(settings, until=until)
    fs, tuning, holdout = check_panel(panel, settings)
    stage = staging_dir(settings, run_id)
    stage.mkdir(parents=True, exist_ok=True)
    summary = {
        "run_id": run_id,
        "staging": str(stage),
        "n_rows": int(len(panel)),
        "n_snapshots": int(fs.meta["t"].max()) + 1,
        "n_coins": int(panel["coin_id"].nunique()),
        "n_tuning_rows": int(len(tuning)),
        "n_holdout_rows": int(len(holdout)),
        "data_window_start": fs.meta["snapshot_ts"].iloc[0].isoformat(),
        "data_window_end": fs.meta["snapshot_ts"].iloc[-1].isoformat(),
        "data_fingerprint": data_fingerprint(panel),
    }
    pd.to_pickle(
        {"X": fs.X, "y": fs.y, "meta": fs.meta, "tuning": tuning, "holdout": holdout},
        stage / "data.pkl",
    )
    write_json(stage / "data.json", summary)
    log.info(
        "prepared %d rows, %d snapshots (%d tuning rows, %d holdout rows) in %.1fs",
        summary["n_rows"],
        summary["n_snapshots"],
        len(tuning),
        len(holdout),
        time.perf_counter() - started,
    )
    return summary
