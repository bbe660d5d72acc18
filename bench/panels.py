"""Forecast skill per panel, measured by the trainer itself on real and synthetic panels.

Each panel goes through the real ingest path into a fresh SQLite store, then through the
training cycle's own stages (:func:`prepare_data`, :func:`train_challenger`), so what is
measured is what a user's night would publish: the features, the search, the blend CV
chose and the calibrated interval. The holdout is the newest snapshots, which the search
never sees.

Panels (``../shared/data`` is read where it is, never copied):

- ``daily_dev``: the daily OHLCV history of 11 coins, the newest 180 snapshots held out;
- ``monthly_dev``: a CoinMarketCap top-200 export, 46 monthly snapshots, the newest 12
  held out (coins enter and leave the top 200: gaps, renames);
- ``synthetic``: the demo generator's panel (60 coins, 80 daily snapshots, seed 7), the
  newest 10 held out: it needs no data files, so it is measured on any machine.

Skill is ``1 - MSE(model) / MSE(persistence)`` on all holdout rows; coverage is the share
of holdout outcomes inside the nominal 80% interval.
"""

from __future__ import annotations

import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .common import REPO, make_settings

DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Panel:
    """A panel of the skill measurement: where its files are and how much is held out."""

    name: str
    source: Path | None  # None: the demo generator
    holdout_snapshots: int

    def available(self) -> bool:
        return self.source is None or (self.source.is_dir() and any(self.source.glob("*.csv")))


PANELS = (
    Panel("daily_dev", DATA / "daily_dev", 180),
    Panel("monthly_dev", DATA / "monthly_dev", 12),
    Panel("synthetic", None, 10),
)


def _files(panel: Panel, root: Path) -> list[Path]:
    if panel.source is not None:
        return sorted(panel.source.glob("*.csv"))
    from liquidity_core.inputs.demo import write_demo_drops

    return write_demo_drops(root / "drops", coins=60, snapshots=80, seed=7)


@contextmanager
def panel_store(panel: Panel, **env):
    """A fresh SQLite store in a temporary folder holding ``panel`` (ingested through the
    real path), its holdout set, with ``env`` as extra ``LIQUIDITY_*`` variables: yields
    ``(settings, engine)``."""
    from liquidity_core.ingest import ingest_paths
    from liquidity_core.store import db

    with tempfile.TemporaryDirectory(prefix=f"liquidity-{panel.name}-") as tmp:
        root = Path(tmp)
        settings = make_settings(
            root,
            f"sqlite:///{root / 'liquidity.db'}",
            LIQUIDITY_HOLDOUT_SNAPSHOTS=panel.holdout_snapshots,
            **env,
        )
        engine = db.get_engine(settings.database_url)
        db.upgrade(engine)
        outcomes = ingest_paths(_files(panel, root), settings=settings)
        if not any(o.rows_loaded for o in outcomes):
            raise RuntimeError(f"{panel.name}: nothing loaded: {[o.as_dict() for o in outcomes]}")
        try:
            yield settings, engine
        finally:
            engine.dispose()


def staged_rows(settings, run_id: str):
    """The trainer's own first stage on ``settings``' store: the features prepared and
    cut into tuning and holdout rows (:class:`~liquidity_core.training.challenger.Rows`),
    as the nightly's search gets them."""
    from liquidity_core.training.challenger import split_rows
    from liquidity_core.training.cycle import MAX_SEARCH_ROWS, prepare_data
    from liquidity_core.training.staging import load_stage_data, staging_dir

    prepare_data(settings, run_id=run_id)
    return split_rows(
        load_stage_data(staging_dir(settings, run_id)),
        max_search_rows=MAX_SEARCH_ROWS,
        seed=settings.random_seed,
    )


def measure(panel: Panel, grid: str) -> dict:
    """Skill, coverage and the chosen form of the trainer's challenger on ``panel``.

    Parameters
    ----------
    panel : Panel
    grid : str
        The forest grid (``liquidity_core.training.candidates.GRIDS`` key): ``default``
        as the nightly runs, ``gate`` for the CI gate.
    """
    from liquidity_core.training.cycle import prepare_data, train_challenger
    from liquidity_core.training.staging import read_json, staging_dir

    logging.getLogger("liquidity_core").setLevel(logging.WARNING)
    started = time.perf_counter()
    with panel_store(panel) as (settings, _engine):
        run_id = f"skill-{panel.name}"
        data = prepare_data(settings, run_id=run_id)
        train_challenger(settings, run_id=run_id, grid=grid, candidates=False)
        challenger = read_json(staging_dir(settings, run_id) / "challenger.json")
    params = challenger["params"]
    return {
        "skill": challenger["holdout_skill"],
        "coverage": challenger["holdout_coverage"],
        "coverage_by_tercile": challenger["holdout_coverage_by_tercile"],
        "holdout_r2": challenger["holdout_r2"],
        "persistence_r2": challenger["persistence_r2"],
        "snapshots_beating_persistence": challenger["snapshots_beating_persistence"],
        "cv_r2_mean": challenger["cv_r2_mean"],
        "blend_weight": params.get("blend_weight"),
        "cv_r2_by_blend": params.get("cv_r2_by_blend"),
        "rows": data["n_rows"],
        "snapshots": data["n_snapshots"],
        "holdout_rows": challenger["n_holdout_rows"],
        "grid": grid,
        "seconds": round(time.perf_counter() - started, 1),
    }


def describe(name: str, r: dict) -> str:
    """One line of a panel's figures."""
    tercile = ", ".join("-" if v is None else f"{v:.3f}" for v in r["coverage_by_tercile"])
    return (
        f"{name}: skill {r['skill']:.4f}, coverage {r['coverage']:.3f} (by market-cap "
        f"tercile {tercile}), beats persistence at {r['snapshots_beating_persistence']:.0%} "
        f"of holdout snapshots, HAR base + {r['blend_weight']:g} x forest (CV R² "
        f"{r['cv_r2_mean']:.4f}); {r['rows']:,} rows, {r['snapshots']} snapshots, "
        f"{r['holdout_rows']:,} holdout rows; grid {r['grid']}, {r['seconds']}s"
    )
