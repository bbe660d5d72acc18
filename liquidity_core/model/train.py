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

import hashlib
import json
import logging
import pickle
import platform
import re
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .. import db
from ..errors import InputError, ModelError, NotEnoughData, NotFound
from ..settings import Settings
from . import intervals, registry
from .features import build_features
from .metrics import holdout_scores, mse, r2
from .splits import PanelTimeSeriesSplit, holdout_split

log = logging.getLogger(__name__)

ALGORITHM = "RandomForestRegressor"
GAP = 1  # snapshot times between training and validation; the target is one step ahead

#: Forest grids by name. "default" is sized for the nightly 1M-row budget (see bench/);
#: "fast" is for tests and demos.
GRIDS = {
    "default": {
        "model__n_estimators": [60, 120],
        "model__max_depth": [10, 16],
        "model__min_samples_leaf": [5, 25],
        "model__max_features": [0.5],
    },
    "fast": {
        "model__n_estimators": [20],
        "model__max_depth": [6, 12],
        "model__min_samples_leaf": [3],
        "model__max_features": [0.5, 1.0],
    },
}
#: Other candidates scored on the same folds for the report (never published).
CANDIDATE_OPTIONS = {
    "default": {"hgb_max_iter": 100, "svr_rows": 4000},
    "fast": {"hgb_max_iter": 50, "svr_rows": 400},
}
MODEL_FILE = "model.pkl"
#: The grid search (and the candidates) fit on at most this many tuning rows, drawn at
#: random with every snapshot time kept. Each tree sees at most max_train_rows_per_tree
#: rows anyway, so more rows mostly cost time: this keeps a 1M-row night in budget.
MAX_SEARCH_ROWS = 250_000


# --- helpers -----------------------------------------------------------------------------


def staging_dir(settings: Settings, run_id: str) -> Path:
    """``MODEL_DIR/staging/<run id>`` with the run id made safe for a file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return Path(settings.model_dir) / "staging" / safe


#: What a run that died leaves behind, untouched this long, is removed by the next run.
#: (Between the DAG's tasks a live run's staging folder is idle, so age is the only safe
#: sign of death; a day is far beyond any stage's run time.)
STALE_STAGING_SECONDS = 24 * 3600


def remove_stale_staging(settings: Settings, *, older_than: float = STALE_STAGING_SECONDS):
    """Delete what runs that died left behind, untouched for ``older_than`` seconds.

    That is: staging folders (``MODEL_DIR/staging/<run id>``, holding the feature panel),
    version folders with no ``model_versions`` row (killed between writing the artifact
    and recording it), and ``*.tmp`` files of interrupted atomic writes.

    Returns
    -------
    list of str
        The removed paths, relative to ``MODEL_DIR``.
    """
    root = Path(settings.model_dir)
    now = time.time()

    def stale(path: Path) -> bool:
        try:
            return now - path.lstat().st_mtime > older_than
        except FileNotFoundError:
            return False

    candidates = []
    if (root / "staging").is_dir():
        candidates += [p for p in (root / "staging").iterdir() if p.is_dir()]
    if (root / "versions").is_dir():
        engine = db.get_engine(settings.database_url)
        recorded = {v["version"] for v in registry.list_versions(engine)}
        candidates += [
            p for p in (root / "versions").iterdir() if p.is_dir() and p.name not in recorded
        ]
    candidates += [p for p in root.rglob("*.tmp") if p.is_file()]
    removed = []
    for path in candidates:
        if not stale(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(str(path.relative_to(root)))
    if removed:
        log.warning("removed what dead runs left behind: %s", removed)
    return removed


def new_version_id(now: datetime | None = None) -> str:
    """A sortable, unique version id such as ``20260101T020000Z-3fa2c1``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def data_fingerprint(panel: pd.DataFrame) -> str:
    """sha256 over the panel's rows, independent of row order."""
    if panel.empty:
        return hashlib.sha256(b"").hexdigest()
    ordered = panel.sort_values(["snapshot_ts", "coin_id"]).reset_index(drop=True)
    ordered = ordered[sorted(ordered.columns)]
    hashed = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def library_versions() -> dict:
    """Versions of the libraries a pickled model depends on."""
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def _write_json(path: Path, payload: dict) -> None:
    registry.atomic_write_bytes(
        path, (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode()
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path} is missing: the stage that writes it has not run for this run id"
        ) from None


def _logging_r2(label: str):
    """An r2 scorer that logs each fold's score and time as it is computed."""
    from sklearn.metrics import r2_score

    state = {"t": time.perf_counter(), "n": 0}

    def score(estimator, X, y):
        value = float(r2_score(y, estimator.predict(X)))
        state["n"] += 1
        now = time.perf_counter()
        params = getattr(estimator, "named_steps", {}).get("model")
        short = (
            {
                k: v
                for k, v in params.get_params().items()
                if k
                in (
                    "n_estimators",
                    "max_depth",
                    "min_samples_leaf",
                    "max_features",
                    "max_iter",
                    "C",
                )
            }
            if params is not None
            else {}
        )
        log.info(
            "%s fold score #%d: r2=%.4f on %d rows (%.1fs since previous) %s",
            label,
            state["n"],
            value,
            len(y),
            now - state["t"],
            short,
        )
        state["t"] = now
        return value

    return score


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
    _write_json(stage / "data.json", summary)
    log.info(
        "prepared %d rows, %d snapshots (%d tuning rows, %d holdout rows) in %.1fs",
        summary["n_rows"],
        summary["n_snapshots"],
        len(tuning),
        len(holdout),
        time.perf_counter() - started,
    )
    return summary


def _load_stage_data(stage: Path) -> dict:
    path = stage / "data.pkl"
    if not path.exists():
        raise InputError(f"{path} is missing: run the data stage for this run id first")
    return pd.read_pickle(path)  # noqa: S301 - written by prepare_data in our own folder


# --- stage 2: challenger ---------------------------------------------------------------


def forest_pipeline(settings: Settings, *, max_samples):
    """``AnchoredPipeline([("scale", StandardScaler()), ("model", RandomForestRegressor())])``:
    a Pipeline fitted on the change from the current log turnover (see target.py)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.preprocessing import StandardScaler

    from .target import AnchoredPipeline

    # The forest predicts the change from today's log turnover; predict() adds it back.
    return AnchoredPipeline(
        [
            ("scale", StandardScaler()),
            (
                "model",
                RandomForestRegressor(
                    max_samples=max_samples,
                    n_jobs=settings.n_jobs,
                    random_state=settings.random_seed,
                ),
            ),
        ]
    )


def _candidate_pipelines(settings: Settings, options: dict) -> dict:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    from .target import har_challenger

    return {
        "HistGradientBoostingRegressor": (
            Pipeline(
                [
                    ("scale", StandardScaler()),
                    (
                        "model",
                        HistGradientBoostingRegressor(
                            max_iter=options["hgb_max_iter"],
                            early_stopping=False,
                            random_state=settings.random_seed,
                        ),
                    ),
                ]
            ),
            None,
        ),
        "SVR": (
            Pipeline(
                [
                    ("impute", SimpleImputer(strategy="median")),
                    ("scale", StandardScaler()),
                    ("model", SVR(C=1.0, epsilon=0.1)),
                ]
            ),
            options["svr_rows"],
        ),
        "HAR-Ridge": (har_challenger(), None),  # see target.py
    }


def _score_candidates(settings, options, X_tune, y_tune, t_tune, X_hold, y_hold, cv):
    from sklearn.model_selection import cross_validate

    results = {}
    rng = np.random.default_rng(settings.random_seed)
    for name, (pipe, max_rows) in _candidate_pipelines(settings, options).items():
        started = time.perf_counter()
        rows = np.arange(len(X_tune))
        if max_rows is not None and len(rows) > max_rows:
            rows = np.sort(rng.choice(rows, size=max_rows, replace=False))
        try:
            scores = cross_validate(
                pipe,
                X_tune.iloc[rows],
                y_tune[rows],
                groups=t_tune[rows],
                cv=cv,
                scoring=_logging_r2(name),
                error_score="raise",
            )["test_score"]
            pipe.fit(X_tune.iloc[rows], y_tune[rows])
            holdout = r2(y_hold, pipe.predict(X_hold))
        except ValueError as exc:  # e.g. a subsample too small for the folds
            log.warning("candidate %s skipped: %s", name, exc)
            results[name] = {"error": str(exc)}
            continue
        results[name] = {
            "cv_scores": [float(s) for s in scores],
            "cv_r2_mean": float(np.mean(scores)),
            "cv_r2_std": float(np.std(scores)),
            "holdout_r2": holdout,
            "train_rows": int(len(rows)),
            "seconds": round(time.perf_counter() - started, 3),
        }
        log.info(
            "candidate %s: cv r2 %.4f, holdout r2 %s in %.1fs",
            name,
            np.mean(scores),
            _fmt(holdout),
            time.perf_counter() - started,
        )
    return results


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
    data = _load_stage_data(stage)
    summary = _read_json(stage / "data.json")
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
        scoring=_logging_r2("forest"),
        refit=True,
        n_jobs=None,  # the forest parallelizes; one level only
        error_score="raise",
    )
    log.info(
        "grid search: %d combinations x %d folds on %d tuning rows (max_samples=%s)",
        len(list(_grid_iter(GRIDS[grid]))),
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
    low, high = intervals.bounds_for(pred, X_hold, calibration)
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
                _score_candidates(
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
    _write_json(stage / "challenger.json", challenger)
    log.info(
        "challenger %s: holdout r2 %s (persistence %s, skill %s), %.1f MB, %.1fs",
        version,
        _fmt(holdout_r2),
        _fmt(persistence_r2),
        _fmt(skill),
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
    """Interval calibration (:mod:`.intervals`) on the newest CV folds, out of sample.

    For the last fold (and earlier ones, newest first, until the calibration holds
    :data:`.intervals.MIN_CALIBRATION_ROWS` rows) the tuned model is refitted on the
    fold's training side only and forecasts its validation snapshots; the holdout is
    never touched, so it can measure the coverage.
    """
    from sklearn.base import clone

    residuals, rows = [], []
    for fit_rows, cal_rows in reversed(list(cv.split(X_tune, y_tune, groups=t_tune))):
        model = clone(best).fit(X_tune.iloc[fit_rows], y_tune[fit_rows])
        residuals.append(y_tune[cal_rows] - model.predict(X_tune.iloc[cal_rows]))
        rows.append(cal_rows)
        if sum(len(r) for r in rows) >= intervals.MIN_CALIBRATION_ROWS:
            break
    cal = X_tune.iloc[np.concatenate(rows)]
    return intervals.fit(
        np.concatenate(residuals),
        cal[intervals.BUCKET_FEATURE].to_numpy(),
        scale=cal[intervals.SCALE_FEATURE].to_numpy(),
    )


def _grid_iter(grid: dict):
    from sklearn.model_selection import ParameterGrid

    return iter(ParameterGrid(grid))


# --- stage 3: compare ------------------------------------------------------------------


def score_model_on(loaded: registry.LoadedModel, X: pd.DataFrame, y) -> float | None:
    """Holdout R² of a loaded model on rows ``X`` (columns aligned to its features)."""
    cols = loaded.feature_names
    return r2(y, loaded.pipeline.predict(X.reindex(columns=cols)))


def compare_with_champion(settings: Settings, *, run_id: str, promote: bool = True) -> dict:
    """Stage 3: score the champion on the challenger's holdout and decide.

    The challenger is promoted when its holdout R² beats the champion's by more than
    ``settings.promotion_margin`` and beats persistence; the first model only has to
    beat persistence.

    Returns
    -------
    dict
        The decision: promote, reason, champion_version, champion_holdout_r2.

    Raises
    ------
    ModelError
        When the champion's artifact fails verification or scoring. The challenger is
        then recorded as rejected and the champion stays.
    """
    stage = staging_dir(settings, run_id)
    challenger = _read_json(stage / "challenger.json")
    engine = db.get_engine(settings.database_url)
    champion = registry.get_champion(engine)
    r2, p_r2 = challenger["holdout_r2"], challenger["persistence_r2"]
    margin = settings.promotion_margin
    decision = {"champion_version": None, "champion_holdout_r2": None}
    if champion is None:
        ok = r2 is not None and p_r2 is not None and r2 > p_r2
        verdict = (
            f"first model: holdout R² {_fmt(r2)} {'beats' if ok else 'does not beat'} "
            f"persistence {_fmt(p_r2)}"
        )
    else:
        decision["champion_version"] = champion["version"]
        data = _load_stage_data(stage)
        X_hold = data["X"].iloc[data["holdout"]]
        y_hold = data["y"].to_numpy()[data["holdout"]]
        try:
            loaded = registry.load_verified_model(settings, champion["version"])
            c_r2 = score_model_on(loaded, X_hold, y_hold)
        except ModelError as exc:
            reason = (
                f"not promoted: champion {champion['version']} could not be re-scored, "
                f"so it is kept: {exc}"
            )
            _write_json(stage / "decision.json", dict(decision, promote=False, reason=reason))
            publish_result(settings, run_id=run_id)
            raise ModelError(
                f"champion {champion['version']} failed verification; challenger "
                f"{challenger['version']} recorded as rejected, champion kept: {exc}"
            ) from None
        decision["champion_holdout_r2"] = c_r2
        beats_champion = r2 is not None and (c_r2 is None or r2 > c_r2 + margin)
        beats_persistence = r2 is not None and p_r2 is not None and r2 > p_r2
        ok = beats_champion and beats_persistence
        parts = [
            f"holdout R² {_fmt(r2)} {'beats' if beats_champion else 'does not beat'} "
            f"champion {champion['version']} ({_fmt(c_r2)}) by more than margin {margin:g}",
            f"{'beats' if beats_persistence else 'does not beat'} persistence {_fmt(p_r2)}",
        ]
        verdict = "; ".join(parts)
        if champion["data_fingerprint"] == challenger["data_fingerprint"]:
            verdict += "; no new data since the champion was trained"
    if not promote:
        reason = f"not promoted (promotion disabled): {verdict}"
        ok = False
    else:
        reason = f"{'promoted' if ok else 'not promoted'}: {verdict}"
    decision.update(promote=bool(ok), reason=reason)
    _write_json(stage / "decision.json", decision)
    log.info("decision for %s: %s", challenger["version"], reason)
    return decision


# --- stage 4: publish ------------------------------------------------------------------

_RESULT_KEYS = (
    "version",
    "status",
    "holdout_r2",
    "holdout_skill",
    "snapshots_beating_persistence",
    "holdout_coverage",
    "holdout_coverage_by_tercile",
    "champion_version",
    "champion_holdout_r2",
    "persistence_r2",
    "recent_mean_r2",
    "cv_r2_mean",
    "cv_r2_std",
    "n_train_rows",
    "n_holdout_rows",
    "artifact_path",
    "artifact_sha256",
    "artifact_bytes",
    "train_seconds",
    "reason",
    "run_id",
    "data_window_start",
    "data_window_end",
    "holdout_start",
    "holdout_end",
)


def _result(row: dict) -> dict:
    out = {k: row.get(k) for k in _RESULT_KEYS}
    # Promotion is carried by the recorded status, never read from the reason's text: a
    # version that was ever champion is ``champion`` or ``retired``; a rejected challenger
    # stays ``rejected`` (rollback only restores earlier champions).
    out["promoted"] = row.get("status") in ("champion", "retired")
    out["candidates"] = {
        name: {k: v for k, v in c.items() if k in ("cv_r2_mean", "holdout_r2", "error")}
        for name, c in (row.get("candidates") or {}).items()
    }
    return out


def publish_result(settings: Settings, *, run_id: str) -> dict:
    """Stage 4: write the version folder, record the run, switch the pointer on promotion.

    Safe to re-run: a run id whose version is already recorded returns that record.

    Returns
    -------
    dict
        version, promoted, status, holdout_r2, champion_holdout_r2, persistence_r2,
        reason, ... (see :func:`run_training_cycle`).
    """
    stage = staging_dir(settings, run_id)
    engine = db.get_engine(settings.database_url)
    if not (stage / "challenger.json").exists():
        # A retry after the version was recorded and the staging folder removed.
        done = registry.versions_of_run(engine, run_id)
        if done:
            return _result(done[0])
    challenger = _read_json(stage / "challenger.json")
    decision = _read_json(stage / "decision.json")
    version = challenger["version"]
    try:
        existing = registry.get_version(engine, version)
    except NotFound:
        existing = None
    if existing is not None:
        shutil.rmtree(stage, ignore_errors=True)
        return _result(existing)
    model_file = stage / MODEL_FILE
    if registry.sha256_file(model_file) != challenger["model_sha256"]:
        raise ModelError(
            f"staged model {model_file} changed since it was scored (sha256 mismatch); "
            "not publishing it"
        )
    row = {
        k: challenger[k]
        for k in (
            "version",
            "algorithm",
            "params",
            "features",
            "data_window_start",
            "data_window_end",
            "n_train_rows",
            "data_fingerprint",
            "cv_scores",
            "cv_r2_mean",
            "cv_r2_std",
            "holdout_start",
            "holdout_end",
            "n_holdout_rows",
            "holdout_r2",
            "holdout_skill",
            "persistence_r2",
            "recent_mean_r2",
            "holdout_r2_by_snapshot",
            "candidates",
            "band_edges",
            "library_versions",
            "train_seconds",
        )
    }
    for k in (
        "snapshots_beating_persistence",
        "holdout_skill_by_snapshot",
        "interval_calibration",
        "holdout_coverage",
        "holdout_coverage_by_tercile",
    ):
        row[k] = challenger.get(k)  # absent from runs staged before migrations 005/006
    row.update(
        created_at=registry.utc_now_iso(),
        champion_version=decision["champion_version"],
        champion_holdout_r2=decision["champion_holdout_r2"],
        reason=decision["reason"],
        run_id=run_id,
    )
    metadata = dict(row, status="champion" if decision["promote"] else "rejected")
    recorded = registry.publish(
        settings,
        row=row,
        model_file=model_file,
        metadata=metadata,
        promote=decision["promote"],
    )
    shutil.rmtree(stage, ignore_errors=True)
    return _result(recorded)


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
