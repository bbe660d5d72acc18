"""What the training stage searches and scores: the forest pipeline, its grids, rivals.

:data:`GRIDS` are the forest's parameter grids, :func:`forest_pipeline` the pipeline
they tune, and :func:`score_candidates` scores the other algorithms on the same folds for
the report (they are never published). :func:`logging_r2` is the scorer all of them use.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from liquidity_core import progress
from liquidity_core.learn.metrics import fmt, r2
from liquidity_core.settings import Settings

#: The training stages log as one logger, the cycle's, so that one switch (tests,
#: bench/retrain.py) follows a whole run.
log = logging.getLogger("liquidity_core.training.cycle")

#: Forest grids by name. "default" is sized for the nightly budget (see bench/): the
#: number of trees is fixed, since CV's choice between 60 and 120 was noise on the dev
#: panels while it doubled the cost; "fast" is for tests and demos. Every combination is
#: also scored at each blend weight of the forest's change (BLEND_WEIGHTS), for free.
GRIDS = {
    "default": {
        "model__n_estimators": [120],
        "model__max_depth": [10, 16],
        "model__min_samples_leaf": [5, 25],
        "model__max_features": [0.5],
    },
    # One forest: the skill gate in CI (bench/gate.py), minutes on 2 cores.
    "gate": {
        "model__n_estimators": [60],
        "model__max_depth": [10],
        "model__min_samples_leaf": [25],
        "model__max_features": [0.5],
    },
    "fast": {
        "model__n_estimators": [20],
        "model__max_depth": [6, 12],
        "model__min_samples_leaf": [3],
        "model__max_features": [0.5, 1.0],
    },
}
#: Trees of each fold forest in the search, by grid; the chosen combination is then fitted
#: with the grid's own ``n_estimators`` (which must then be one value). A forest's CV
#: ranking settles long before its last trees: ``BENCH_ONLY=search make bench`` compares
#: this search's choice with the full-size one's on the dev panels (at 40 trees the
#: monthly panel's choice flipped between two combinations 0.001 apart in CV; at 50 every
#: panel chooses as the full-size search). Grids not listed search with their own trees.
SEARCH_TREES = {"default": 50}
#: Other candidates scored on the same folds for the report (never published). Each is
#: fitted on a random subset of at most its ``*_rows`` tuning rows: the gradient boosting
#: on as many as a few of the forest's trees see together, the SVR (quadratic) on fewer.
CANDIDATE_OPTIONS = {
    "default": {"hgb_max_iter": 100, "hgb_rows": 60_000, "svr_rows": 4000},
    "fast": {"hgb_max_iter": 50, "hgb_rows": 60_000, "svr_rows": 400},
    "gate": {"hgb_max_iter": 50, "hgb_rows": 60_000, "svr_rows": 400},
}
#: The grid search (and the candidates) fit on at most this many tuning rows, drawn at
#: random with every snapshot time kept. Each tree sees at most max_train_rows_per_tree
#: rows anyway, but a tree's cost grows with the rows it draws from: on the 300k-row demo
#: panel 150,000 rows gave the same holdout skill as 250,000 (0.3395 vs 0.3392) for 15%
#: less CPU per cycle. The dev panels have fewer tuning rows than this.
MAX_SEARCH_ROWS = 150_000


def logging_r2(label: str):
    """An r2 scorer that logs each fold's score and time as it is computed."""
    from sklearn.metrics import r2_score

    log_fold = fold_logger(label)

    def score(estimator, X, y):
        value = float(r2_score(y, estimator.predict(X)))
        log_fold(estimator, value, len(y))
        return value

    return score


#: The parameters of a fold model that its log line shows.
LOGGED_PARAMS = ("n_estimators", "max_depth", "min_samples_leaf", "max_features", "max_iter", "C")


def fold_logger(label: str):
    """``log_fold(estimator, r2, rows)``: logs a fold's score, its parameters and the time
    since the previous fold, and reports it as a progress step."""
    state = {"t": time.perf_counter(), "n": 0}

    def log_fold(estimator, value: float, rows: int) -> None:
        state["n"] += 1
        now = time.perf_counter()
        model = getattr(estimator, "named_steps", {}).get("model")
        params = model.get_params() if model is not None else {}
        short = {k: v for k, v in params.items() if k in LOGGED_PARAMS}
        log.info(
            "%s fold score #%d: r2=%.4f on %d rows (%.1fs since previous) %s",
            label,
            state["n"],
            value,
            rows,
            now - state["t"],
            short,
        )
        progress.step(
            f"{label} fold {state['n']}: r2 {value:.4f} on {rows:,} rows in {now - state['t']:.1f}s"
        )
        state["t"] = now

    return log_fold


def forest_pipeline(settings: Settings, *, max_samples):
    """``AnchoredPipeline([("select", DropColumns()), ("scale", StandardScaler()),
    ("model", RandomForestRegressor())])``: a Pipeline fitted on the change from the
    current log turnover (see estimators.py), on every feature but
    :data:`~liquidity_core.features.columns.LEFT_OUT_OF_FOREST`."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.preprocessing import StandardScaler

    from liquidity_core.features.columns import LEFT_OUT_OF_FOREST
    from liquidity_core.learn.estimators import AnchoredPipeline, DropColumns

    # The forest predicts the change from today's log turnover; predict() adds it back.
    # The anchor reads its columns from the whole input, before the steps.
    return AnchoredPipeline(
        [
            ("select", DropColumns(drop=LEFT_OUT_OF_FOREST)),
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

    from liquidity_core.learn.estimators import DropEmpty, har_challenger

    return {
        "HistGradientBoostingRegressor": (
            Pipeline(
                [
                    ("drop_empty", DropEmpty()),  # an all-NaN column breaks its binner
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
            options["hgb_rows"],
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


def score_candidates(settings, options, X_tune, y_tune, t_tune, X_hold, y_hold, cv):
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
                scoring=logging_r2(name),
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
            fmt(holdout),
            time.perf_counter() - started,
        )
    return results


def grid_iter(grid: dict):
    from sklearn.model_selection import ParameterGrid

    return iter(ParameterGrid(grid))


def search_forest(settings: Settings, grid: str, X_tune, y_tune, t_tune, cv):
    """Grid-search the forest (:data:`GRIDS` ``[grid]``) and the blend weight of its
    change (:data:`~liquidity_core.learn.estimators.BLEND_WEIGHTS`) on the tuning rows'
    folds. Each fold model predicts its validation rows once and is scored at every
    weight from that prediction, so the weight costs no fit and no extra prediction.

    The fold forests have :data:`SEARCH_TREES` trees where the grid names one; the chosen
    combination is then fitted on all tuning rows with the grid's own ``n_estimators``.
    Each tree sees at most ``settings.max_train_rows_per_tree`` rows (``max_samples``).

    Returns
    -------
    best : AnchoredPipeline
        The best pipeline, fitted on all tuning rows, its ``blend`` set to the weight CV
        chose.
    cv_scores : list of float
        Its R² on each fold, at that weight.
    form : dict
        The blend weight chosen, the mean CV R² at each weight of the chosen forest
        (``cv_r2_by_blend``; weight 0 is the HAR base alone) and the trees of the fold
        forests (``search_trees``).
    fold_forecasts : list of FoldForecast
        The chosen combination's fold models' forecasts of their validation rows, one per
        fold (out of sample: the interval calibration's residuals).
    """
    from sklearn.base import clone

    from liquidity_core.learn.estimators import BLEND_WEIGHTS, best_blend, blend_key

    started = time.perf_counter()
    param_grid = search_grid(grid)
    search, forecasts = run_search(settings, param_grid, X_tune, y_tune, t_tune, cv)
    i, weight = best_blend(search.cv_results_)
    key = blend_key(weight)
    chosen = dict(search.cv_results_["params"][i])
    chosen["model__n_estimators"] = final_trees(grid, chosen)
    best = clone(search.estimator).set_params(**chosen, blend=weight).fit(X_tune, y_tune)
    cv_scores = [
        float(search.cv_results_[f"split{k}_test_{key}"][i]) for k in range(settings.cv_splits)
    ]
    by_blend = {
        f"{w:g}": float(search.cv_results_[f"mean_test_{blend_key(w)}"][i]) for w in BLEND_WEIGHTS
    }
    log.info(
        "best forest %s at blend %g: cv r2 %.4f (HAR base alone %.4f) after %.1fs",
        chosen,
        weight,
        np.mean(cv_scores),
        by_blend["0"],
        time.perf_counter() - started,
    )
    form = {"blend_weight": weight, "cv_r2_by_blend": by_blend}
    form["search_trees"] = int(search.cv_results_["params"][i]["model__n_estimators"])
    return best, cv_scores, form, forecasts[params_key(search.cv_results_["params"][i], param_grid)]


@dataclass(frozen=True)
class FoldForecast:
    """One fold model's forecast of its validation rows, as the search scored it."""

    rows: np.ndarray  # positions in the tuning rows
    anchor: np.ndarray
    change: np.ndarray

    def residuals(self, y_tune: np.ndarray, blend: float) -> np.ndarray:
        """Outcome minus forecast at blend weight ``blend``."""
        return y_tune[self.rows] - (self.anchor + blend * self.change)


def run_search(settings: Settings, param_grid: dict, X_tune, y_tune, t_tune, cv):
    """The fitted ``GridSearchCV`` (not refitted) of the forest pipeline over
    ``param_grid`` on the tuning rows' folds, each fold model scored at every blend
    weight from one prediction of its change (``mean_test_blend_<w>`` in its results).

    Returns
    -------
    search : GridSearchCV
    forecasts : dict
        ``{params key: [FoldForecast, ...]}`` (:func:`params_key` of a combination of
        ``search.cv_results_["params"]``), one per fold: what the interval calibration
        reuses instead of refitting the folds.
    """
    from sklearn.model_selection import GridSearchCV

    from liquidity_core.learn.estimators import BLEND_WEIGHTS, blend_key, blend_scores

    cap = settings.max_train_rows_per_tree
    max_samples = cap if len(y_tune) > cap else None
    log_fold = fold_logger("forest")
    if not X_tune.index.is_unique:  # the index maps each fold's rows back to positions
        X_tune = X_tune.reset_index(drop=True)
    forecasts: dict[tuple, list[FoldForecast]] = {}

    def scoring(estimator, X, y) -> dict:
        forecast = FoldForecast(
            X_tune.index.get_indexer(X.index), estimator.anchor_of(X), estimator.predict_change(X)
        )
        forecasts.setdefault(params_key(estimator.get_params(), param_grid), []).append(forecast)
        scores = blend_scores(y, forecast.anchor, forecast.change)
        log_fold(estimator, scores[blend_key(1.0)], len(y))  # the whole forest
        return scores

    search = GridSearchCV(
        forest_pipeline(settings, max_samples=max_samples),
        param_grid,
        cv=cv,
        scoring=scoring,
        refit=False,  # the caller fits the chosen combination
        n_jobs=None,  # the forest parallelizes; one level only
        error_score="raise",
    )
    log.info(
        "grid search: %d combinations x %d folds on %d tuning rows (max_samples=%s), "
        "each scored at blend weights %s",
        len(list(grid_iter(param_grid))),
        settings.cv_splits,
        len(y_tune),
        max_samples,
        list(BLEND_WEIGHTS),
    )
    return search.fit(X_tune, y_tune, groups=t_tune), forecasts


def params_key(params: dict, param_grid: dict) -> tuple:
    """The values of ``param_grid``'s parameters in ``params``: one combination's key."""
    return tuple((name, params[name]) for name in sorted(param_grid))


def search_grid(grid: str) -> dict:
    """The grid the folds are fitted with: :data:`GRIDS` ``[grid]`` with its number of
    trees cut to :data:`SEARCH_TREES` ``[grid]`` where that is set."""
    param_grid = dict(GRIDS[grid])
    trees = SEARCH_TREES.get(grid)
    if trees is not None:
        param_grid["model__n_estimators"] = [trees]
    return param_grid


def final_trees(grid: str, chosen: dict) -> int:
    """The number of trees of the published forest: the grid's own (one value when the
    search grows fewer), else the one the search chose."""
    own = GRIDS[grid]["model__n_estimators"]
    if SEARCH_TREES.get(grid) is not None:
        (trees,) = own
        return int(trees)
    return int(chosen["model__n_estimators"])
