"""The nightly training cycle: four stages, one module each, run in order.

:func:`run_training_cycle` (the CLI) runs them one after another; ``dags/liquidity_retrain.py``
runs each as a task. They hand large objects to each other as files in
``MODEL_DIR/staging/<run id>/`` (:mod:`.staging`), never in memory or XCom:

1. :func:`.data.prepare_data` -- load the panel, build features, check there are enough
   snapshots for the folds and the holdout (:class:`NotEnoughData` otherwise), stage them.
2. :func:`.challenger.train_challenger` -- grid search over the forest
   (:mod:`.candidates`) with time-ordered folds on the tuning rows only, other candidates
   scored on the same folds, the winning pipeline (fitted on the tuning rows) scored on
   the holdout together with the baselines.
3. :func:`.compare.compare_with_champion` -- re-score the champion's verified artifact on
   the same holdout rows and decide; :func:`compare_or_reject` (this module) has stage 4
   record a rejected challenger when the champion cannot be re-scored, then fails.
4. :func:`.publish.publish_result` -- version folder, ``model_versions`` row (every run),
   and on promotion the ``current.json`` switch.

The stages' entry points are importable from here as well (the DAG, tests and bench/ use
``liquidity_core.training.cycle``).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pandas as pd

from liquidity_core import progress
from liquidity_core.errors import ModelError
from liquidity_core.settings import Settings
from liquidity_core.training.candidates import GRIDS, MAX_SEARCH_ROWS, forest_pipeline  # noqa: F401 - re-exported
from liquidity_core.training.challenger import calibrate_intervals, train_challenger  # noqa: F401 - re-exported
from liquidity_core.training.compare import compare_with_champion
from liquidity_core.training.data import GAP, check_panel, load_panel, prepare_data  # noqa: F401 - re-exported
from liquidity_core.training.publish import publish_result
from liquidity_core.training.staging import remove_stale_staging, staging_dir  # noqa: F401 - re-exported

# --- the whole cycle --------------------------------------------------------------------


def compare_or_reject(settings: Settings, *, run_id: str, promote: bool = True) -> dict:
    """Stage 3 as the cycle and the DAG run it: :func:`compare_with_champion`, and when the
    champion cannot be re-scored, :func:`publish_result` records the challenger as rejected
    before the error is raised, so the failed run still leaves its record.

    Raises
    ------
    ModelError
        The champion failed verification or scoring (the challenger is recorded as
        rejected, the champion kept).
    """
    try:
        return compare_with_champion(settings, run_id=run_id, promote=promote)
    except ModelError as exc:
        recorded = publish_result(settings, run_id=run_id)
        raise ModelError(
            f"{exc}; challenger {recorded['version']} recorded as rejected, champion kept"
        ) from None


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
        progress.stage("training 1/4: prepare data")
        prepare_data(settings, run_id=run_id, until=until, panel=panel)
        progress.stage("training 2/4: train challenger")
        train_challenger(settings, run_id=run_id, grid=grid, candidates=candidates)
        progress.stage("training 3/4: compare with champion")
        compare_or_reject(settings, run_id=run_id, promote=promote)
        progress.stage("training 4/4: publish")
        return publish_result(settings, run_id=run_id)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
