"""Skill: forecast skill against persistence on real daily history, old model vs new.

The real daily OHLCV history of ``../shared/data/daily_dev`` (read from there, never
copied; the area records nothing when it is absent) is ingested into a temporary SQLite
store by the normal ingest path and loaded back as the trainer loads it. A fixed protocol
then scores three forecasts on the same holdout:

* ``persistence``: tomorrow's log turnover = today's (skill 0 by definition);
* ``v1``: the first published model -- the v1 feature set, a forest on the *level*;
* ``v2``: the current model -- :data:`liquidity_core.features.build.BASE_FEATURES`, the forest
  on the change from today's level (:class:`liquidity_core.learn.estimators.AnchoredPipeline`).

Protocol: holdout = the newest :data:`DAILY_HOLDOUT` snapshot times; the forest is tuned
by the trainer's ``GridSearchCV`` over time-ordered folds (``PanelTimeSeriesSplit``) on
everything before (with the trainer's one-snapshot gap), refitted, and scored once.
Skill = ``1 - MSE / MSE(persistence)`` on all holdout rows; per snapshot, skill and R²
are also computed and the share of holdout snapshots where the model beats persistence
is given. The residual median by market-cap tercile (at the snapshot) shows the bias.

The same is repeated on a "monthly-like" panel: the daily history resampled to each
coin's last day of every month (~100 snapshots), holdout = the newest
:data:`MONTHLY_HOLDOUT` months.

Figures: ``skill_daily_v1``, ``skill_daily_v2`` (ratio-free; the note holds R², MSE,
per-snapshot share and bias), ``skill_daily_beat_share_v2``, ``skill_monthly_v1``,
``skill_monthly_v2``, ``skill_monthly_beat_share_v2``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .common import REPO, Results, Scale, make_settings

DATA = REPO.parent / "shared" / "data" / "daily_dev"
DAILY_HOLDOUT = 180
MONTHLY_HOLDOUT = 24
VARIANTS = ("v1", "v2")


def available() -> bool:
    return DATA.is_dir() and any(DATA.glob("*.csv"))


def figure_names(scale: Scale) -> list[str]:
    if not available():
        return []
    return [
        f"skill_{c}_{what}" for c in ("daily", "monthly") for what in ("v1", "v2", "beat_share_v2")
    ] + [f"interval_coverage_{c}" for c in ("daily", "monthly")]


def load_dev_panel(root: Path) -> pd.DataFrame:
    """The dev files through the real ingest path into a fresh SQLite store, loaded back."""
    from liquidity_core.ingest import ingest_paths
    from liquidity_core.store import db
    from liquidity_core.store.snapshots import load_snapshots

    settings = make_settings(root, f"sqlite:///{root / 'liquidity.db'}")
    engine = db.get_engine(settings.database_url)
    db.upgrade(engine)
    outcomes = ingest_paths([DATA], settings=settings)
    bad = [o.as_dict() for o in outcomes if not o.rows_loaded]
    if bad:
        raise RuntimeError(f"dev data ingest loaded nothing from: {bad}")
    panel = load_snapshots(engine)
    engine.dispose()
    return panel


def monthly(panel: pd.DataFrame) -> pd.DataFrame:
    """Each coin's last row of every calendar month, stamped at that month's end."""
    month = panel["snapshot_ts"].dt.tz_localize(None).dt.to_period("M")
    last = (
        panel.assign(_m=month)
        .sort_values("snapshot_ts")
        .groupby(["coin_id", "_m"], as_index=False)
        .tail(1)
    )
    stamp = last["_m"].dt.to_timestamp(how="end").dt.normalize().dt.tz_localize("UTC")
    return last.drop(columns="_m").assign(snapshot_ts=stamp).reset_index(drop=True)


def _pipeline(variant: str, settings, max_samples):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from liquidity_core.training.cycle import forest_pipeline

    if variant == "v1":  # the first models: the forest on the level
        return Pipeline(
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
    return forest_pipeline(settings, max_samples=max_samples)


def evaluate(panel: pd.DataFrame, holdout_snapshots: int, grid: str, settings) -> dict:
    """Tune and score each variant with the fixed protocol; see the module docstring."""
    from sklearn.model_selection import GridSearchCV

    from liquidity_core.features.build import build_features
    from liquidity_core.learn.metrics import holdout_scores
    from liquidity_core.learn.splits import PanelTimeSeriesSplit, holdout_split
    from liquidity_core.training.cycle import GAP, GRIDS

    out = {}
    for variant in VARIANTS:
        t0 = time.perf_counter()
        X, y, meta = build_features(panel, feature_set=variant)
        y = y.to_numpy()
        t = meta["t"].to_numpy()
        tuning, holdout = holdout_split(
            t,
            np.isfinite(y),
            holdout_snapshots=holdout_snapshots,
            gap=GAP,
            n_splits=settings.cv_splits,
        )
        cap = settings.max_train_rows_per_tree
        search = GridSearchCV(
            _pipeline(variant, settings, cap if len(tuning) > cap else None),
            GRIDS[grid],
            cv=PanelTimeSeriesSplit(settings.cv_splits, gap=GAP),
            scoring="r2",
            refit=True,
            error_score="raise",
        )
        search.fit(X.iloc[tuning], y[tuning], groups=t[tuning])
        X_hold, y_hold = X.iloc[holdout], y[holdout]
        pred = search.best_estimator_.predict(X_hold)
        persistence = X_hold["log_turnover"].to_numpy()
        persistence = np.where(np.isfinite(persistence), persistence, np.nanmean(y[tuning]))
        meta_hold = meta.iloc[holdout].reset_index(drop=True)
        scores = holdout_scores(meta_hold, y_hold, pred, persistence)
        # Residual median by market-cap tercile (terciles of the holdout's caps).
        lmc = X_hold["log_market_cap"].to_numpy()
        edges = np.nanquantile(lmc, [1 / 3, 2 / 3])
        bucket = np.digitize(lmc, edges)
        resid = y_hold - pred
        bias = {
            name: float(np.median(resid[bucket == b]))
            for b, name in enumerate(("small", "mid", "large"))
            if np.any(bucket == b)
        }
        bias_p = {
            name: float(np.median((y_hold - persistence)[bucket == b]))
            for b, name in enumerate(("small", "mid", "large"))
            if np.any(bucket == b)
        }
        out[variant] = dict(
            scores,
            bias=bias,
            persistence_bias=bias_p,
            params=search.best_params_,
            n_tuning=int(len(tuning)),
            n_holdout=int(len(holdout)),
            n_features=X.shape[1],
            seconds=round(time.perf_counter() - t0, 1),
        )
        if variant == "v2":  # the served interval, calibrated as the trainer does
            from liquidity_core.learn import intervals
            from liquidity_core.training.cycle import calibrate_intervals

            cv = PanelTimeSeriesSplit(settings.cv_splits, gap=GAP)
            cal = calibrate_intervals(
                search.best_estimator_, X.iloc[tuning], y[tuning], t[tuning], cv
            )
            size = X_hold[intervals.BUCKET_FEATURE].to_numpy()
            low, high = intervals.bounds_for(pred, X_hold, cal)
            out[variant]["coverage"] = intervals.coverage(
                y_hold, low, high, size, cal["mcap_edges"]
            )
        if variant == "v2":  # the linear HAR challenger of the report, same rows
            from liquidity_core.learn.estimators import har_challenger

            har = har_challenger().fit(X.iloc[tuning], y[tuning])
            out["har"] = holdout_scores(meta_hold, y_hold, har.predict(X_hold), persistence)
    return out


def _note(r: dict) -> str:
    bias = ", ".join(f"{k} {v:+.3f}" for k, v in r["bias"].items())
    return (
        f"R2 {r['holdout_r2']:.4f} (persistence {r['persistence_r2']:.4f}); MSE "
        f"{r['mse']:.4f} vs persistence {r['persistence_mse']:.4f}; per-snapshot skill "
        f"median {r['snapshot_skill_median']:.3f}, beats persistence at "
        f"{r['snapshots_beating_persistence']:.0%} of {r['n_snapshots']} snapshots; "
        f"residual median by mcap tercile: {bias}; {r['n_features']} features, "
        f"{r['n_tuning']} tuning / {r['n_holdout']} holdout rows, {r['seconds']}s"
    )


def run(scale: Scale, results: Results) -> None:
    if not available():
        results.note("skill", f"{DATA} is absent: nothing measured")
        return
    logging.getLogger("liquidity_core").setLevel(logging.WARNING)
    grid = "fast" if scale.name == "tiny" else "default"
    with tempfile.TemporaryDirectory(prefix="liquidity-bench-skill-") as tmp:
        root = Path(tmp)
        panel = load_dev_panel(root)
        settings = make_settings(root, f"sqlite:///{root / 'liquidity.db'}")
        results.note(
            "skill",
            f"{len(panel):,} rows, {panel['coin_id'].nunique()} coins, "
            f"{panel['snapshot_ts'].nunique()} daily snapshots; grid {grid}",
        )
        for cadence, frame, holdout in (
            ("daily", panel, DAILY_HOLDOUT),
            ("monthly", monthly(panel), MONTHLY_HOLDOUT),
        ):
            res = evaluate(frame, holdout, grid, settings)
            p = res["v2"]
            results.note(
                "skill",
                f"{cadence}: persistence MSE {p['persistence_mse']:.4f}, "
                f"residual median by mcap tercile "
                + ", ".join(f"{k} {v:+.3f}" for k, v in p["persistence_bias"].items()),
            )
            c = res["v2"]["coverage"]
            results.add(
                f"interval_coverage_{cadence}",
                c["overall"],
                "share",
                goal="0.75..0.85",
                note=f"nominal 80% interval on the {cadence} holdout; by market-cap tercile "
                + ", ".join("-" if v is None else f"{v:.3f}" for v in c["by_tercile"])
                + f"; mean width {c['mean_width']:.3f} (log turnover)",
                **c,
            )
            h = res["har"]
            results.note(
                "skill",
                f"{cadence}: HAR-Ridge challenger skill {h['holdout_skill']:.4f}, R2 "
                f"{h['holdout_r2']:.4f}, beats persistence at "
                f"{h['snapshots_beating_persistence']:.0%} of snapshots",
            )
            for variant in VARIANTS:
                r = res[variant]
                results.add(
                    f"skill_{cadence}_{variant}",
                    r["holdout_skill"],
                    "skill",
                    goal=">= 0.20" if cadence == "daily" and variant == "v2" else None,
                    note=_note(r),
                    **{k: v for k, v in r.items() if k != "per_snapshot"},
                )
            results.add(
                f"skill_{cadence}_beat_share_v2",
                res["v2"]["snapshots_beating_persistence"],
                "share",
                note=f"v1: {res['v1']['snapshots_beating_persistence']:.3f}",
            )
