"""Training stage 2: tune the forest on the tuning rows and score it on the holdout.

:func:`train_challenger` grid-searches the forest (:mod:`.candidates`) with time-ordered
folds on the tuning rows only, scores the winning pipeline (fitted on the tuning rows) on
the holdout together with the baselines, calibrates its intervals out of sample, and
stages the pickled model and ``challenger.json``.
"""

from __future__ import annotations

import logging
import pickle
import platform
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from liquidity_core.errors import InputError
from liquidity_core.features.build import MARKET_FEATURES
from liquidity_core.learn import intervals, psi
from liquidity_core.learn.metrics import fmt, holdout_scores, mse, r2
from liquidity_core.learn.splits import PanelTimeSeriesSplit
from liquidity_core.registry import champion as registry
from liquidity_core.settings import Settings
from liquidity_core.training.candidates import (
    CANDIDATE_OPTIONS,
    GRIDS,
    MAX_SEARCH_ROWS,
    score_candidates,
    search_forest,
)
from liquidity_core.training.data import GAP
from liquidity_core.training.staging import (
    DRIFT_FILE,
    HOLDOUT_PREDICTIONS,
    MODEL_FILE,
    load_stage_data,
    read_json,
    staging_dir,
    write_json,
)

#: The training stages log as one logger, the cycle's, so that one switch (tests,
#: bench/retrain.py) follows a whole run.
log = logging.getLogger("liquidity_core.training.cycle")

ALGORITHM = "RandomForestRegressor"


def new_version_id(now: datetime | None = None) -> str:
    """A sortable, unique version id such as ``20260101T020000Z-3fa2c1``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def library_versions() -> dict:
    """Versions of the libraries a pickled model depends on."""
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def _per_snapshot_r2(meta_hold: pd.DataFrame, y_hold, preds: dict) -> dict:
    out = {}
    for ts, idx in meta_hold.groupby("snapshot_ts").indices.items():
        entry = {"n": int(len(idx))}
        for name, pred in preds.items():
            entry[name] = r2(y_hold[idx], pred[idx])
        out[pd.Timestamp(ts).isoformat()] = entry
    return out


@dataclass(frozen=True)
class Rows:
    """The staged panel cut into the rows the stage fits on and the holdout it scores on.

    Attributes
    ----------
    X_tune, y_tune, t_tune
        Tuning rows (at most ``max_search_rows``, drawn at random): features, targets and
        snapshot-time indices (the fold groups).
    X_hold, y_hold, meta_hold
        Holdout rows: features, targets, ``snapshot_ts``/``coin_id`` (index reset).
    band_edges : list of float
        Log-turnover terciles of all tuning targets (Low/Medium/High).
    fitted_through : str
        The newest snapshot time of the tuning rows (ISO 8601): the model's rows after it
        are out of sample.
    """

    X_tune: pd.DataFrame
    y_tune: np.ndarray
    t_tune: np.ndarray
    X_hold: pd.DataFrame
    y_hold: np.ndarray
    meta_hold: pd.DataFrame
    band_edges: list
    fitted_through: str


def split_rows(data: dict, *, max_search_rows: int, seed: int) -> Rows:
    """Cut the staged data (:func:`.staging.load_stage_data`) into :class:`Rows`."""
    X, y, meta = data["X"], data["y"].to_numpy(), data["meta"]
    # The market-wide columns are one value for every coin at a snapshot: with a few dozen
    # tuning snapshots the trees split on them as a time index, and the holdout falls
    # outside what they learned. The coin's distance from the market stays a feature.
    X = X.drop(columns=[c for c in MARKET_FEATURES if c in X.columns])
    tuning, holdout = data["tuning"], data["holdout"]
    band_edges = [float(v) for v in np.quantile(y[tuning], [1 / 3, 2 / 3])]
    if len(tuning) > max_search_rows:
        rng = np.random.default_rng(seed)
        log.info("fitting on %d of %d tuning rows (random)", max_search_rows, len(tuning))
        tuning = np.sort(rng.choice(tuning, size=max_search_rows, replace=False))
    return Rows(
        X_tune=X.iloc[tuning],
        y_tune=y[tuning],
        t_tune=meta["t"].to_numpy()[tuning],
        X_hold=X.iloc[holdout],
        y_hold=y[holdout],
        meta_hold=meta.iloc[holdout].reset_index(drop=True),
        band_edges=band_edges,
        fitted_through=pd.Timestamp(meta["snapshot_ts"].iloc[tuning].max()).isoformat(),
    )


def holdout_report(pred: np.ndarray, rows: Rows, calibration: dict) -> dict:
    """The tuned model's holdout forecasts ``pred`` and the two baselines, scored.

    Persistence forecasts today's log turnover, the recent mean its 7-snapshot mean (both
    filled with the tuning mean where missing). Returns the ``challenger.json`` entries
    ``holdout_r2``, ``holdout_skill``, ``persistence_r2``, ``recent_mean_r2``, the
    per-snapshot scores and the interval coverage.
    """
    X_hold, y_hold, meta_hold = rows.X_hold, rows.y_hold, rows.meta_hold
    hold_mcap = X_hold[intervals.BUCKET_FEATURE].to_numpy()
    low, high = intervals.bounds_for(pred, X_hold, calibration)
    covered = intervals.coverage(y_hold, low, high, hold_mcap, calibration["mcap_edges"])
    fill = float(np.nanmean(rows.y_tune))
    persistence = X_hold["log_turnover"].to_numpy()
    recent = X_hold["log_turnover_mean_7"].to_numpy()
    persistence = np.where(np.isfinite(persistence), persistence, fill)
    recent = np.where(np.isfinite(recent), recent, fill)
    mse_p = mse(y_hold, persistence)
    scores = holdout_scores(meta_hold, y_hold, pred, persistence)  # per holdout snapshot
    times = meta_hold["snapshot_ts"]
    return {
        "holdout_start": times.min().isoformat(),
        "holdout_end": times.max().isoformat(),
        "n_holdout_rows": int(len(y_hold)),
        "holdout_r2": r2(y_hold, pred),
        "holdout_skill": None if mse_p == 0 else 1.0 - mse(y_hold, pred) / mse_p,
        "persistence_r2": r2(y_hold, persistence),
        "recent_mean_r2": r2(y_hold, recent),
        "holdout_r2_by_snapshot": _per_snapshot_r2(
            meta_hold, y_hold, {"model": pred, "persistence": persistence}
        ),
        "holdout_skill_by_snapshot": scores["per_snapshot"],
        "snapshots_beating_persistence": scores["snapshots_beating_persistence"],
        "holdout_coverage": covered["overall"],
        "holdout_coverage_by_tercile": covered["by_tercile"],
    }


def _stage_model(stage, best) -> dict:
    """Pickle the tuned pipeline into the staging folder; its sha256 and size."""
    model_path = stage / MODEL_FILE
    registry.atomic_write_bytes(model_path, pickle.dumps(best, protocol=pickle.HIGHEST_PROTOCOL))
    return {
        "model_sha256": registry.sha256_file(model_path),
        "model_bytes": model_path.stat().st_size,
    }


#: What :func:`train_challenger` returns (the DAG's XCom): a summary of challenger.json.
SUMMARY_KEYS = (
    "version",
    "holdout_r2",
    "persistence_r2",
    "holdout_skill",
    "snapshots_beating_persistence",
    "holdout_coverage",
    "cv_r2_mean",
    "train_seconds",
)


def train_challenger(
    settings: Settings,
    *,
    run_id: str,
    grid: str = "default",
    candidates: bool = True,
    max_search_rows: int = MAX_SEARCH_ROWS,
) -> dict:
    """Stage 2: tune the forest on the tuning rows and score it on the holdout.

    Parameters
    ----------
    settings : Settings
    run_id : str
        Staging folder written by :func:`prepare_data`.
    grid : {"default", "fast"}, default="default"
        Which parameter grid (:data:`GRIDS`) to search.
    candidates : bool, default=True
        Also score HistGradientBoostingRegressor and SVR (subsample) on the same folds.
    max_search_rows : int, default=MAX_SEARCH_ROWS
        Fit on a random subset of this many tuning rows when there are more.

    Returns
    -------
    dict
        Summary of the challenger (version, cv and holdout scores, baselines).
    """
    if grid not in GRIDS:
        raise InputError(f"grid {grid!r} is not one of {sorted(GRIDS)}")
    started = time.perf_counter()
    stage = staging_dir(settings, run_id)
    summary = read_json(stage / "data.json")
    rows = split_rows(
        load_stage_data(stage), max_search_rows=max_search_rows, seed=settings.random_seed
    )
    cv = PanelTimeSeriesSplit(settings.cv_splits, gap=GAP)
    best, cv_scores, form, fold_forecasts = search_forest(
        settings, grid, rows.X_tune, rows.y_tune, rows.t_tune, cv
    )
    calibration = calibrate_intervals(fold_forecasts, form["blend_weight"], rows)
    pred = best.predict(rows.X_hold)
    np.save(stage / HOLDOUT_PREDICTIONS, pred)  # compared with the champion's, row by row
    report = holdout_report(pred, rows, calibration)
    # Other algorithms scored on the same folds, for the report (the forest is in
    # cv_scores / holdout_r2 / params).
    rivals = score_rivals(settings, grid, rows, cv) if candidates else {}
    params = {
        k: v
        for k, v in best.named_steps["model"].get_params().items()
        if isinstance(v, (int, float, str, bool, type(None)))
    }
    params.update(form)  # the blend weight CV chose, and its CV R² at every weight
    published, params["fitted_through"] = best, rows.fitted_through
    if settings.refit:
        # Scored as fitted on the tuning rows; published refit on the holdout rows too, with
        # the same parameters and blend, so it has seen the newest outcomes. Its interval
        # calibration stays the out-of-fold one.
        published, params["fitted_through"] = refit_on_all(best, rows)
    params["refit"] = bool(settings.refit)
    # Its rows after fitted_through are out of sample (the champion comparison relies on it).
    challenger = {
        "version": new_version_id(),
        "algorithm": ALGORITHM,
        "params": params,
        "features": list(rows.X_tune.columns),
        "data_window_start": summary["data_window_start"],
        "data_window_end": summary["data_window_end"],
        "n_train_rows": int(len(rows.y_tune)),
        "data_fingerprint": summary["data_fingerprint"],
        "cv_scores": cv_scores,
        "cv_r2_mean": float(np.mean(cv_scores)),
        "cv_r2_std": float(np.std(cv_scores)),
        **report,
        "candidates": rivals,
        "band_edges": rows.band_edges,
        "interval_calibration": calibration,
        "library_versions": library_versions(),
        "train_seconds": round(time.perf_counter() - started, 3),
        **_stage_model(stage, published),
    }
    write_json(stage / "challenger.json", challenger)
    # The drift reference: the rows the model was fitted on, here while they are at hand.
    write_json(
        stage / DRIFT_FILE, psi.reference_of_rows(rows.X_tune, rows.X_tune.columns, rows.t_tune)
    )
    log.info(
        "challenger %s: holdout r2 %s (persistence %s, skill %s), %.1f MB, %.1fs",
        challenger["version"],
        fmt(challenger["holdout_r2"]),
        fmt(challenger["persistence_r2"]),
        fmt(challenger["holdout_skill"]),
        challenger["model_bytes"] / 1e6,
        challenger["train_seconds"],
    )
    return {k: challenger[k] for k in SUMMARY_KEYS}


def score_rivals(settings: Settings, grid: str, rows: Rows, cv) -> dict:
    """The other candidate algorithms (:func:`.candidates.score_candidates`), thread-capped."""
    from threadpoolctl import threadpool_limits

    # HistGradientBoosting uses OpenMP threads: cap them at n_jobs like the forest,
    # and at one on small data, where spinning threads cost more than they give.
    threads = 1 if len(rows.y_tune) < 50_000 else max(1, settings.n_jobs)
    with threadpool_limits(limits=threads):
        return score_candidates(
            settings,
            CANDIDATE_OPTIONS[grid],
            rows.X_tune,
            rows.y_tune,
            rows.t_tune,
            rows.X_hold,
            rows.y_hold,
            cv,
        )


def refit_on_all(best, rows: Rows) -> tuple:
    """``best`` (its parameters and blend) refitted on the tuning and holdout rows, and the
    newest snapshot time it has then seen (ISO 8601)."""
    from sklearn.base import clone

    X = pd.concat([rows.X_tune, rows.X_hold])
    y = np.concatenate([rows.y_tune, rows.y_hold])
    through = pd.Timestamp(rows.meta_hold["snapshot_ts"].max()).isoformat()
    return clone(best).fit(X, y), through


def calibrate_intervals(fold_forecasts, blend: float, rows: Rows) -> dict:
    """Interval calibration (:mod:`liquidity_core.learn.intervals`) on the newest CV
    folds, out of sample.

    The residuals are those of the search's own fold models of the chosen combination
    (:class:`.candidates.FoldForecast`, at the chosen blend weight), each fitted on its
    fold's training side only: the last fold's, and earlier ones, newest first, until
    the calibration holds :data:`.intervals.MIN_CALIBRATION_ROWS` rows. The holdout is
    never touched, so it can measure the coverage.
    """
    residuals, cal_rows = [], []
    newest_first = sorted(fold_forecasts, key=lambda f: rows.t_tune[f.rows].max(), reverse=True)
    for forecast in newest_first:
        residuals.append(forecast.residuals(rows.y_tune, blend))
        cal_rows.append(forecast.rows)
        if sum(len(r) for r in cal_rows) >= intervals.MIN_CALIBRATION_ROWS:
            break
    cal = rows.X_tune.iloc[np.concatenate(cal_rows)]
    return intervals.fit(
        np.concatenate(residuals),
        cal[intervals.BUCKET_FEATURE].to_numpy(),
        scale=cal[intervals.SCALE_FEATURE].to_numpy(),
    )
