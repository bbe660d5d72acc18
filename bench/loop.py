"""Loop: realized coverage and skill of stored forecasts, replaying real daily history.

The daily OHLCV history of ``../shared/data/daily_dev`` (read from there, never copied;
nothing is measured when it is absent) is ingested into a temporary SQLite store by the
normal ingest path. The model is trained once by the real cycle
(:func:`liquidity_core.training.cycle.run_training_cycle`) on the snapshots before the newest
:data:`REPLAY` days, then :func:`liquidity_core.monitoring.forecasts.forecast_new_snapshots`
scores every later snapshot into the ``forecasts`` table and
:func:`liquidity_core.monitoring.accuracy.monitor` joins them with what happened. The
snapshots are scored in one call: each forecast's features use only rows at or before its
snapshot (the leak test of ``tests/unit/features/test_features.py``), and
``tests/unit/monitoring/test_forecast_loop.py`` lands snapshots one at a time, so the
numbers are those of a day-by-day replay.

Figures (no reference: skill is already relative to persistence, measured on the same rows):

- ``loop_realized_coverage_daily``: share of realized log turnovers inside the stored
  nominal 80% interval (goal 0.75..0.85, the issue's);
- ``loop_realized_skill_daily``: ``1 - MSE / MSE(persistence)`` of the stored forecasts;
- ``loop_alert_share_daily``: share of the 3-snapshot windows over the replay where the
  monitoring alert (skill < 0 or coverage outside nominal ± 10 points) would have fired;
- ``loop_realized_coverage_daily_retrained`` and ``loop_realized_skill_daily_retrained``:
  the same replay with a retrain by the real cycle (fast grid, the real promotion rule)
  every :data:`RETRAIN_EVERY` snapshots; each snapshot is scored by the version that was
  champion at that time (the latest promoted one trained up to it), as in production.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from .common import Results, Scale, make_settings
from .panels import DATA as SHARED_DATA

DATA = SHARED_DATA / "daily_dev"


def available() -> bool:
    return DATA.is_dir() and any(DATA.glob("*.csv"))


#: Newest daily snapshots replayed after training.
REPLAY = 365
#: Snapshots between two retrains in the retrained replay (tiny scale: one retrain).
RETRAIN_EVERY = {"tiny": 183}
DEFAULT_RETRAIN_EVERY = 73


def figure_names(scale: Scale) -> list[str]:
    if not available():
        return []
    names = [
        f"loop_{what}_daily" for what in ("realized_coverage", "realized_skill", "alert_share")
    ]
    return names + ["loop_realized_coverage_daily_retrained", "loop_realized_skill_daily_retrained"]


def _alert_share(rows: pd.DataFrame) -> tuple[float, int, float, float]:
    """Share of 3-target-snapshot windows in which the monitoring alert would fire, the
    number of windows, and the shares firing on skill and on coverage."""
    from liquidity_core.monitoring.accuracy import ALERT_SNAPSHOTS, COVERAGE_TOLERANCE, scores

    times = sorted(rows["target_ts"].unique())
    skill, cover = [], []
    for i in range(ALERT_SNAPSHOTS, len(times) + 1):
        s = scores(rows[rows["target_ts"].isin(times[i - ALERT_SNAPSHOTS : i])])
        cover.append(abs(s["coverage"] - s["nominal_coverage"]) > COVERAGE_TOLERANCE)
        skill.append(s["skill"] is not None and s["skill"] < 0)
    n = len(skill)
    if not n:
        return float("nan"), 0, float("nan"), float("nan")
    either = sum(a or b for a, b in zip(skill, cover, strict=True))
    return either / n, n, sum(skill) / n, sum(cover) / n


def _served(rows: pd.DataFrame, reigns: list[tuple]) -> pd.DataFrame:
    """The outcome rows of the version that was champion at each forecast's snapshot.

    ``reigns`` are ``(first snapshot, version)`` of the promoted versions, oldest first.
    """
    starts = pd.DatetimeIndex([pd.Timestamp(t) for t, _ in reigns])
    at = starts.searchsorted(pd.DatetimeIndex(rows["snapshot_ts"]), side="right") - 1
    champion = [reigns[i][1] if i >= 0 else None for i in at]
    return rows[rows["model_version"].to_numpy() == pd.Series(champion).to_numpy()]


def run(scale: Scale, results: Results) -> None:
    if not available():
        results.note("loop", f"{DATA} is absent: nothing measured")
        return
    from liquidity_core.ingest import ingest_paths
    from liquidity_core.monitoring import accuracy as monitoring
    from liquidity_core.monitoring import forecasts
    from liquidity_core.store import db
    from liquidity_core.store.snapshots import SNAPSHOT_TIMES
    from liquidity_core.training.cycle import run_training_cycle

    logging.getLogger("liquidity_core").setLevel(logging.WARNING)
    grid = "fast" if scale.name == "tiny" else "default"
    with tempfile.TemporaryDirectory(prefix="liquidity-bench-loop-") as tmp:
        root = Path(tmp)
        settings = make_settings(
            root,
            f"sqlite:///{root / 'liquidity.db'}",
            LIQUIDITY_HOLDOUT_SNAPSHOTS=60,
            LIQUIDITY_REFIT=None,  # the product's default, as a user runs it
        )
        engine = db.get_engine(settings.database_url)
        db.upgrade(engine)
        ingest_paths([DATA], settings=settings)
        with db.transaction(engine) as conn:
            times = [r[0] for r in conn.execute(SNAPSHOT_TIMES)]
        cutoff = times[-REPLAY - 1]
        trained = run_training_cycle(settings, until=cutoff, grid=grid, candidates=False)
        forecasts.forecast_new_snapshots(settings)  # the forecast step, as the DAG runs it
        report = monitoring.monitor(settings)
        (v,) = [x for x in report["versions"] if x["version"] == trained["version"]]
        share, windows, on_skill, on_cover = _alert_share(monitoring.outcomes(engine))
        every = RETRAIN_EVERY.get(scale.name, DEFAULT_RETRAIN_EVERY)
        reigns = [(cutoff, trained["version"])]
        for k in range(every, REPLAY, every):
            at = times[-REPLAY - 1 + k]
            again = run_training_cycle(settings, until=at, grid="fast", candidates=False)
            if again["promoted"]:
                reigns.append((at, again["version"]))
                forecasts.forecast_new_snapshots(settings)  # the new champion scores
        served = monitoring.scores(_served(monitoring.outcomes(engine), reigns))
        engine.dispose()
    context = (
        f"trained on {len(times) - REPLAY} daily snapshots up to {str(cutoff)[:10]} "
        f"(grid {grid}; holdout R2 {trained['holdout_r2']:.3f}, holdout coverage "
        f"{trained.get('holdout_coverage') or float('nan'):.3f}); {v['forecasts']} forecasts "
        f"stored, {v['rows']} outcomes in {v['snapshots']} target snapshots"
    )
    results.note("loop", context)
    results.add(
        "loop_realized_coverage_daily",
        v["coverage"],
        "share",
        goal="0.75..0.85",
        note=f"nominal {v['nominal_coverage']:.0%}; mean width {v['mean_width']:.3f} (log)",
    )
    results.add(
        "loop_realized_skill_daily",
        v["skill"],
        "skill",
        note=f"realized R2 {v['realized_r2']:.4f} vs persistence {v['persistence_r2']:.4f}; "
        f"MAE {v['mae']:.4f} (log turnover)",
    )
    results.add(
        "loop_alert_share_daily",
        share,
        "share",
        note=f"{windows} windows of 3 target snapshots; on skill < 0: {on_skill:.3f}, on "
        f"coverage outside 70%..90%: {on_cover:.3f}",
    )
    retrains = len(range(every, REPLAY, every))
    note = (
        f"retrained every {every} snapshots ({retrains} runs, {len(reigns) - 1} promoted); "
        f"{served['rows']} outcomes of the champion of the day"
    )
    results.add(
        "loop_realized_coverage_daily_retrained",
        served["coverage"],
        "share",
        goal="0.75..0.85",
        note=f"{note}; mean width {served['mean_width']:.3f} (log)",
    )
    results.add(
        "loop_realized_skill_daily_retrained",
        served["skill"],
        "skill",
        note=f"{note}; realized R2 {served['realized_r2']:.4f} vs persistence "
        f"{served['persistence_r2']:.4f}",
    )
