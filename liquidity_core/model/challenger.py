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
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from ..errors import InputError
from ..settings import Settings
from . import intervals, registry
from .candidates import (
    CANDIDATE_OPTIONS,
    GRIDS,
    MAX_SEARCH_ROWS,
    forest_pipeline,
    grid_iter,
    logging_r2,
    score_candidates,
)
from .data import GAP
from .metrics import holdout_scores, mse, r2
from .splits import PanelTimeSeriesSplit
from .staging import MODEL_FILE, fmt, load_stage_data, read_json, staging_dir, write_json

#: The training stages log as one logger, the cycle's, so that one switch (tests,
#: bench/retrain.py) follows a whole run.
log = logging.getLogger("liquidity_core.model.train")

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
    from sklearn.model_selection import GridSearchCV

    if grid not in GRIDS:
        raise InputError(f"grid {grid!r} is not one of {sorted(GRIDS)}")
    started = time.perf_counter()
    stage = staging_dir(settings, run_id)
    data = load_stage_data(stage)
    summary = read_json(stage / "data.json")
    X, y, meta = data["X"], data["y"].to_numpy(), data["meta"]
    tuning, holdout = data["tuning"], data["holdout"]
    band_edges = [float(v) for v in np.quantile(y[tuning], [1 / 3, 2 / 3])]
    if len(tuning) > max_search_rows:
        rng = np.random.default_rng(settings.random_seed)
        log.info("fitting on %d of %d tuning rows (random)", max_search_rows, len(tuning))
        tuning = np.sort(rng.choice(tuning, size=max_search_rows, replace=False))
    X_tune, y_tune, t_tune = X.iloc[tuning], y[tuning], meta["t"].to_numpy()[tuning]
    X_hold, y_hold, meta_hold = X.iloc[holdout], y[holdout], meta.iloc[holdout]
    meta_hold = meta_hold.reset_index(drop=True)

    cap = settings.max_train_rows_per_tree
    max_samples = cap if len(tuning) > cap else None
    cv = PanelTimeSeriesSplit(settings.cv_splits, gap=GAP)
    search = GridSearchCV(
        forest_pipeline(settings, max_samples=max_samples),
        GRIDS[grid],
        cv=cv,
        scoring=logging_r2("forest"),
        refit=True,
        n_jobs=None,  # the forest parallelizes; one level only
        error_score="raise",
    )
    log.info(
        "grid search: %d combinations x %d folds on %d tuning rows (max_samples=%s)",
        len(list(grid_iter(GRIDS[grid]))),
        settings.cv_splits,
        len(tuning),
        max_samples,
    )
    search.fit(X_tune, y_tune, groups=t_tune)
    best = search.best_estimator_
    i = search.best_index_
    cv_scores = [
        float(search.cv_results_[f"split{k}_test_score"][i]) for k in range(settings.cv_splits)
    ]
    log.info(
        "best forest %s: cv r2 %.4f after %.1fs",
        search.best_params_,
        np.mean(cv_scores),
        time.perf_counter() - started,
    )

    pred = best.predict(X_hold)
    calibration = calibrate_intervals(best, X_tune, y_tune, t_tune, cv)
    hold_mcap = X_hold[intervals.BUCKET_FEATURE].to_numpy()
    low, high = intervals.bounds(pred, hold_mcap, calibration)
    covered = intervals.coverage(y_hold, low, high, hold_mcap, calibration["mcap_edges"])
    persistence = X_hold["log_turnover"].to_numpy()
    recent = X_hold["log_turnover_mean_7"].to_numpy()
    fill = float(np.nanmean(y_tune))
    persistence = np.where(np.isfinite(persistence), persistence, fill)
    recent = np.where(np.isfinite(recent), recent, fill)
    holdout_r2 = r2(y_hold, pred)
    persistence_r2 = r2(y_hold, persistence)
    mse_p = mse(y_hold, persistence)
    skill = None if mse_p == 0 else 1.0 - mse(y_hold, pred) / mse_p
    scores = holdout_scores(meta_hold, y_hold, pred, persistence)  # per holdout snapshot

    # Other algorithms scored on the same folds, for the report (the forest is in
    # cv_scores / holdout_r2 / params).
    cands: dict = {}
    if candidates:
        from threadpoolctl import threadpool_limits

        # HistGradientBoosting uses OpenMP threads: cap them at n_jobs like the forest,
        # and at one on small data, where spinning threads cost more than they give.
        threads = 1 if len(tuning) < 50_000 else max(1, settings.n_jobs)
        with threadpool_limits(limits=threads):
            cands.update(
                score_candidates(
                    settings, CANDIDATE_OPTIONS[grid], X_tune, y_tune, t_tune, X_hold, y_hold, cv
                )
            )

    version = new_version_id()
    model_path = stage / MODEL_FILE
    registry.atomic_write_bytes(model_path, pickle.dumps(best, protocol=pickle.HIGHEST_PROTOCOL))
    times = meta_hold["snapshot_ts"]
    params = {
        k: v
        for k, v in best.named_steps["model"].get_params().items()
        if isinstance(v, (int, float, str, bool, type(None)))
    }
    challenger = {
        "version": version,
        "algorithm": ALGORITHM,
        "params": params,
        "features": list(X.columns),
        "data_window_start": summary["data_window_start"],
        "data_window_end": summary["data_window_end"],
        "n_train_rows": int(len(tuning)),
        "data_fingerprint": summary["data_fingerprint"],
        "cv_scores": cv_scores,
        "cv_r2_mean": float(np.mean(cv_scores)),
        "cv_r2_std": float(np.std(cv_scores)),
        "holdout_start": times.min().isoformat(),
        "holdout_end": times.max().isoformat(),
        "n_holdout_rows": int(len(holdout)),
        "holdout_r2": holdout_r2,
        "holdout_skill": skill,
        "persistence_r2": persistence_r2,
        "recent_mean_r2": r2(y_hold, recent),
        "holdout_r2_by_snapshot": _per_snapshot_r2(
            meta_hold, y_hold, {"model": pred, "persistence": persistence}
        ),
        "holdout_skill_by_snapshot": scores["per_snapshot"],
        "snapshots_beating_persistence": scores["snapshots_beating_persistence"],
        "candidates": cands,
        "band_edges": band_edges,
        "interval_calibration": calibration,
        "holdout_coverage": covered["overall"],
        "holdout_coverage_by_tercile": covered["by_tercile"],
        "library_versions": library_versions(),
        "train_seconds": round(time.perf_counter() - started, 3),
        "model_sha256": registry.sha256_file(model_path),
        "model_bytes": model_path.stat().st_size,
    }
    write_json(stage / "challenger.json", challenger)
    log.info(
        "challenger %s: holdout r2 %s (persistence %s, skill %s), %.1f MB, %.1fs",
        version,
        fmt(holdout_r2),
        fmt(persistence_r2),
        fmt(skill),
        challenger["model_bytes"] / 1e6,
        challenger["train_seconds"],
    )
    return {
        k: challenger[k]
        for k in (
            "version",
            "holdout_r2",
            "persistence_r2",
            "holdout_skill",
            "snapshots_beating_persistence",
            "holdout_coverage",
            "cv_r2_mean",
            "train_seconds",
        )
    }


def calibrate_intervals(best, X_tune: pd.DataFrame, y_tune, t_tune, cv) -> dict:
    """Interval calibration (:mod:`.intervals`) on the last CV fold, out of sample.

    The tuned model is refitted on that fold's training side only and forecasts its
    validation snapshots; the holdout is never touched, so it can measure the coverage.
    """
    from sklearn.base import clone

    *_, (fit_rows, cal_rows) = cv.split(X_tune, y_tune, groups=t_tune)
    model = clone(best).fit(X_tune.iloc[fit_rows], y_tune[fit_rows])
    residuals = y_tune[cal_rows] - model.predict(X_tune.iloc[cal_rows])
    mcap = X_tune[intervals.BUCKET_FEATURE].to_numpy()[cal_rows]
    return intervals.fit(residuals, mcap)
