"""The nightly training cycle: data check, challenger, comparison, publication.

Four stages, run one after another by :func:`run_training_cycle` (the CLI) or as the
tasks of ``dags/liquidity_retrain.py``. They hand large objects to each other as files in
``MODEL_DIR/staging/<run id>/``, never in memory or XCom:

1. :func:`prepare_data` -- load the panel, build features, check there are enough
   snapshots for the folds and the holdout (:class:`NotEnoughData` otherwise), stage them.
2. :func:`train_challenger` -- grid search over the forest with time-ordered folds on the
   tuning rows only, other candidates scored on the same folds, the winning pipeline
   (fitted on the tuning rows) scored on the holdout together with the baselines.
3. :func:`compare_with_champion` -- re-score the champion's verified artifact on the
   same holdout rows and decide.
4. :func:`publish_result` -- version folder, ``model_versions`` row (every run), and on
   promotion the ``current.json`` switch.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pandas as pd

from ..settings import Settings
from .candidates import GRIDS, MAX_SEARCH_ROWS, forest_pipeline  # noqa: F401 - re-exported
from .challenger import calibrate_intervals, train_challenger  # noqa: F401 - re-exported
from .compare import compare_with_champion
from .data import GAP, check_panel, load_panel, prepare_data  # noqa: F401 - re-exported
from .publish import publish_result
from .staging import remove_stale_staging, staging_dir  # noqa: F401 - re-exported

# --- the whole cycle --------------------------------------------------------------------


def run_training_cycle(
    settings: Settings,
    *,
    promote: bool = True,
    run_id: str | None = None,
    until=None,
    grid: str = "default",
    candidates: bool = True,
    panel: pd.DataFrame | None = None,
) -> dict:
    """One full retraining cycle, as the nightly DAG runs it.

    Parameters
    ----------
    settings : Settings
    promote : bool, default=True
        False records the challenger as rejected whatever its score (``--no-promote``).
    run_id : str, default=None
        Recorded with the version; default ``manual__<utc time>``.
    until : datetime or str, default=None
        Last snapshot time to train on; None = all data.
    grid : {"default", "fast"}, default="default"
        Parameter grid of the forest.
    candidates : bool, default=True
        Also score the other candidate algorithms for the report.
    panel : pandas.DataFrame, default=None
        Train on this panel instead of the database's snapshots.

    Returns
    -------
    dict
        ``version``, ``promoted``, ``status``, ``holdout_r2``, ``champion_version``,
        ``champion_holdout_r2`` (None without a champion), ``persistence_r2``,
        ``recent_mean_r2``, ``holdout_skill``, ``cv_r2_mean``, ``reason``, ``run_id``, ...

    Raises
    ------
    NotEnoughData
        Too few snapshots; the message gives the counts.
    ModelError
        The champion artifact failed verification (the challenger is recorded as
        rejected, the champion kept).
    """
    run_id = run_id or f"manual__{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    stage = staging_dir(settings, run_id)
    try:
        prepare_data(settings, run_id=run_id, until=until, panel=panel)
        train_challenger(settings, run_id=run_id, grid=grid, candidates=candidates)
        compare_with_champion(settings, run_id=run_id, promote=promote)
        return publish_result(settings, run_id=run_id)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
