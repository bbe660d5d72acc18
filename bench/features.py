"""Features that carry nothing: permutation importance on the nightly's CV folds, per panel.

``python -m bench.features`` (minutes on one core) reviews the ``"v2"`` feature set on
every panel of :mod:`bench.panels` (``daily_dev``, ``monthly_dev``, ``synthetic``).

Method. Each panel goes through the trainer's own first stage (ingest into a fresh store,
:func:`prepare_data`, :func:`split_rows`), so the columns are the ones the forest is fitted
on: :data:`BASE_FEATURES` and the panel's ``x_*`` columns, without the market-wide columns,
which ``split_rows`` leaves out. The tuning rows (never the holdout) are cut into the
nightly's folds (``PanelTimeSeriesSplit(cv_splits, gap=GAP)``). On each fold's training
rows the nightly's pipeline (:func:`forest_pipeline`: the HAR anchor plus a forest of the
change) is fitted with one combination of the ``default`` grid, :data:`SHAPE` (the one
its search chooses on daily_dev and synthetic; on monthly_dev the four combinations are
within 0.001 of CV R²), with ``n_jobs=1`` and the settings' seed. On the fold's
validation rows each column is permuted :data:`N_REPEATS` times
(:func:`sklearn.inspection.permutation_importance`) and its importance is the mean drop of
the R² of the next log turnover. The anchor is computed from the unpermuted rows, so the
drop is what the column gives through the forest (blend weight 1, the whole forest); the
anchor's own columns (:data:`ANCHOR_COLUMNS`) are needed by the anchor whatever it shows.

Per column and panel: the mean drop over the folds and its standard error (sample
standard deviation over the folds / sqrt(folds)). A column "carries nothing" on a panel
when its mean drop is at most one standard error above 0, and is flagged when it carries
nothing on every panel. Single-column permutation understates columns with close twins
(the forest splits on the twin instead), so the flagged columns are then permuted
together, one shared permutation of their rows per repeat, on every fold of every panel:
that joint drop is what losing all of them at once would cost. The same joint check is
run on each panel for the columns that carry nothing there. Last, the flagged columns the
anchor does not read are dropped and each fold's pipeline refitted without them: the
change of the fold R² is what removing them from the feature set would do to CV.

``--seed N`` (default 42, the settings' default) reseeds the forests and permutations, to
see which verdicts are noise.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from liquidity_core.learn.estimators import ANCHOR_FALLBACKS, DEFAULT_ANCHOR, HAR_COLUMNS

from .panels import PANELS, panel_store, staged_rows

#: The fold forests: the nightly search's trees (SEARCH_TREES["default"]) with the
#: "default" grid's deeper, larger-leaved combination.
SHAPE = {
    "model__n_estimators": 50,
    "model__max_depth": 16,
    "model__min_samples_leaf": 25,
    "model__max_features": 0.5,
}
#: Permutations of each column on each fold.
N_REPEATS = 5
#: Columns the HAR anchor reads (its level and the HAR base's columns).
ANCHOR_COLUMNS = tuple(dict.fromkeys((DEFAULT_ANCHOR, *ANCHOR_FALLBACKS, *HAR_COLUMNS)))


@dataclass(frozen=True)
class Fold:
    """A fitted fold model, its training rows and its validation rows with their anchor
    (from the unpermuted rows) and the outcome's total sum of squares."""

    model: object
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray
    anchor: np.ndarray
    sst: float

    @property
    def resid(self) -> np.ndarray:
        """The outcome minus the anchor: what the forest's change is scored against."""
        return self.y_val - self.anchor


@dataclass
class PanelReview:
    """One panel's folds and each column's drop in R² on each fold."""

    name: str
    folds: list
    drops: dict  # column -> [drop on each fold]
    all_nan: set
    tuning_rows: int
    seed: int
    seconds: float = 0.0


def check_shape() -> None:
    """:data:`SHAPE` must be a combination of the nightly's search grid."""
    from liquidity_core.training.candidates import search_grid

    grid = search_grid("default")
    off = {k: v for k, v in SHAPE.items() if v not in grid[k]}
    if off:
        raise SystemExit(f"SHAPE {off} is not in the default search grid {grid}")


def forest_r2(sst: float):
    """Scorer: the R² of the next log turnover when the forest's change is added to a
    fixed anchor (``y`` is the outcome minus that anchor)."""

    def score(model, X, resid) -> float:
        return 1.0 - float(np.sum((resid - model.predict_change(X)) ** 2)) / sst

    return score


def fold_models(settings, rows) -> list[Fold]:
    """The pipeline of :data:`SHAPE` fitted on each fold's training rows of ``rows``."""
    from sklearn.base import clone

    from liquidity_core.learn.splits import PanelTimeSeriesSplit
    from liquidity_core.training.candidates import forest_pipeline
    from liquidity_core.training.cycle import GAP

    cap = settings.max_train_rows_per_tree  # as run_search
    max_samples = cap if len(rows.y_tune) > cap else None
    # Every column goes to the forest here, those it is left out of too, to review them.
    template = forest_pipeline(settings, max_samples=max_samples)
    template.set_params(**SHAPE, select__drop=())
    cv = PanelTimeSeriesSplit(settings.cv_splits, gap=GAP)
    folds = []
    for train, test in cv.split(rows.X_tune, groups=rows.t_tune):
        X_train, y_train = rows.X_tune.iloc[train], rows.y_tune[train]
        model = clone(template).fit(X_train, y_train)
        X_val, y_val = rows.X_tune.iloc[test], rows.y_tune[test]
        sst = float(np.sum((y_val - y_val.mean()) ** 2))
        folds.append(Fold(model, X_train, y_train, X_val, y_val, model.anchor_of(X_val), sst))
    return folds


def review_panel(panel, seed: int) -> PanelReview:
    """Stage ``panel`` as the trainer does, fit its folds and permute every column."""
    from sklearn.inspection import permutation_importance

    started = time.perf_counter()
    with panel_store(panel, LIQUIDITY_N_JOBS=1, LIQUIDITY_SEED=seed) as (settings, _engine):
        rows = staged_rows(settings, f"features-{panel.name}")
    folds = fold_models(settings, rows)
    columns = list(rows.X_tune.columns)
    drops = {c: [] for c in columns}
    for fold in folds:
        result = permutation_importance(
            fold.model,
            fold.X_val,
            fold.resid,
            scoring=forest_r2(fold.sst),
            n_repeats=N_REPEATS,
            random_state=seed,
            n_jobs=None,
        )
        for c, value in zip(columns, result.importances_mean, strict=True):
            drops[c].append(float(value))
    all_nan = {c for c in columns if rows.X_tune[c].isna().all()}
    seconds = time.perf_counter() - started
    return PanelReview(panel.name, folds, drops, all_nan, len(rows.y_tune), seed, seconds)


def joint_drop(fold: Fold, columns: list[str], seed: int, n_repeats: int = N_REPEATS) -> float:
    """The mean drop in R² on ``fold`` when ``columns`` are permuted together (one shared
    permutation of the rows per repeat, so their relations to each other stay)."""
    score = forest_r2(fold.sst)
    base = score(fold.model, fold.X_val, fold.resid)
    rng = np.random.default_rng(seed)
    values = fold.X_val[columns].to_numpy()
    out = []
    for _ in range(n_repeats):
        shuffled = fold.X_val.copy()
        shuffled[columns] = values[rng.permutation(len(values))]
        out.append(base - score(fold.model, shuffled, fold.resid))
    return float(np.mean(out))


def refit_change(fold: Fold, columns: list[str]) -> float:
    """R² on ``fold``'s validation rows of its pipeline refitted without ``columns``,
    minus the R² of the fold model (both at blend 1; keep the anchor's columns)."""
    from sklearn.base import clone

    kept = [c for c in fold.X_train.columns if c not in columns]
    without = clone(fold.model).fit(fold.X_train[kept], fold.y_train)
    return float(
        without.score(fold.X_val[kept], fold.y_val) - fold.model.score(fold.X_val, fold.y_val)
    )


def mean_se(values) -> tuple[float, float]:
    """Mean over the folds and its standard error (ddof=1)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def carries_nothing(values) -> bool:
    """Mean drop at most one standard error above 0."""
    mean, se = mean_se(values)
    return mean <= se


def cell(review: PanelReview, column: str) -> str:
    if column not in review.drops:
        return "absent"
    if column in review.all_nan:
        return "all NaN"
    mean, se = mean_se(review.drops[column])
    mark = "*" if carries_nothing(review.drops[column]) else " "
    return f"{mean:+.5f} ± {se:.5f}{mark}"


def verdict(reviews: list[PanelReview], column: str) -> str:
    """The column's verdict: whether it carries nothing on every panel, on some, or none."""
    present = [r for r in reviews if column in r.drops]
    if len(present) < len(reviews):
        return "n/a: only in " + ", ".join(r.name for r in present)
    nothing = [r.name for r in present if carries_nothing(r.drops[column])]
    if len(nothing) == len(reviews):
        return "carries nothing"
    if not nothing:
        return "carries something"
    return "nothing on " + ", ".join(nothing)


def print_table(reviews: list[PanelReview], columns: list[str]) -> None:
    width = max(len(c) for c in columns) + 2
    head = "".join(f"{r.name:>22}" for r in reviews)
    print(f"{'feature':<{width}}{head}   verdict")
    for c in columns:
        cells = "".join(f"{cell(r, c):>22}" for r in reviews)
        note = " (anchor column)" if c in ANCHOR_COLUMNS else ""
        print(f"{c:<{width}}{cells}   {verdict(reviews, c)}{note}")


def print_joint(label: str, reviews: list[PanelReview], columns: list[str]) -> None:
    """The joint drop of ``columns`` on every fold of each review, mean ± SE per panel."""
    parts = []
    for r in reviews:
        drops = [joint_drop(f, [c for c in columns if c in r.drops], r.seed) for f in r.folds]
        mean, se = mean_se(drops)
        parts.append(f"{r.name} {mean:+.5f} ± {se:.5f}")
    print(f"  {label}: " + "; ".join(parts))


def summary(reviews: list[PanelReview], columns: list[str]) -> None:
    from liquidity_core.features.columns import MARKET_FEATURES

    verdicts = {c: verdict(reviews, c) for c in columns}
    flagged = [c for c, v in verdicts.items() if v == "carries nothing"]
    partly = {
        c: v.removeprefix("nothing on ") for c, v in verdicts.items() if v.startswith("nothing on ")
    }
    one = [f"{c} ({p})" for c, p in partly.items() if "," not in p]
    two = [f"{c} ({p})" for c, p in partly.items() if "," in p]
    print("\nsummary")
    print(f"  carries nothing on every panel: {', '.join(flagged) or 'none'}")
    print(f"  carries nothing on one panel only: {', '.join(one) or 'none'}")
    print(f"  carries nothing on two panels: {', '.join(two) or 'none'}")
    print(f"  not in the forest at all (split_rows leaves them out): {', '.join(MARKET_FEATURES)}")
    print("  joint drop in R² (mean ± SE over folds) when permuted together:")
    if flagged:
        print_joint("the columns flagged on every panel", reviews, flagged)
    for r in reviews:
        own = [c for c in r.drops if c not in r.all_nan and carries_nothing(r.drops[c])]
        if own:
            print_joint(f"{r.name}'s own {len(own)} (all-NaN ones aside)", [r], own)
    droppable = [c for c in flagged if c not in ANCHOR_COLUMNS]
    if droppable:
        print(f"  refitted without {', '.join(droppable)}: change of fold R² (mean ± SE):")
        parts = []
        for r in reviews:
            mean, se = mean_se([refit_change(f, droppable) for f in r.folds])
            parts.append(f"{r.name} {mean:+.5f} ± {se:.5f}")
        print("    " + "; ".join(parts))
    print("  fold R², forest on the anchor (blend 1) / anchor alone (blend 0):")
    for r in reviews:
        full = np.mean([forest_r2(f.sst)(f.model, f.X_val, f.resid) for f in r.folds])
        alone = np.mean([1.0 - float(np.sum(f.resid**2)) / f.sst for f in r.folds])
        rows = f"{r.tuning_rows:,} tuning rows, {r.seconds:.0f}s"
        print(f"    {r.name} {full:.4f} / {alone:.4f} ({rows})")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__)
    parser.add_argument("--seed", type=int, default=42, help="forests and permutations")
    seed = parser.parse_args(argv).seed
    check_shape()
    logging.getLogger("liquidity_core").setLevel(logging.WARNING)
    started = time.perf_counter()
    reviews = []
    with warnings.catch_warnings():
        # An all-NaN column (change_1h on daily OHLCV, target_weekday at a monthly
        # cadence) makes StandardScaler warn on every fit; the forest ignores it.
        warnings.simplefilter("ignore", RuntimeWarning)
        for panel in PANELS:
            if not panel.available():
                print(f"{panel.name}: {panel.source} is absent, not reviewed", flush=True)
                continue
            reviews.append(review_panel(panel, seed))
            print(f"{panel.name}: reviewed in {reviews[-1].seconds:.1f}s", flush=True)
        columns = list(dict.fromkeys(c for r in reviews for c in r.drops))
        print(
            f"\nDrop in R² when the column is permuted (mean ± SE over {len(reviews[0].folds)} "
            f"folds, {N_REPEATS} repeats; * = at most one SE above 0); forest {SHAPE}, "
            f"seed {seed}\n"
        )
        print_table(reviews, columns)
        summary(reviews, columns)
    print(f"\nruntime {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
