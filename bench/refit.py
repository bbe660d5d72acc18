"""Refit: does publishing the challenger refitted on its holdout rows forecast better?

A replay through stored forecasts on ``daily_dev`` and ``monthly_dev``: each panel is
ingested whole into a fresh store, a model is trained on the snapshots up to a cut-off
(``until``; the newest :data:`REPLAY` snapshots after it are never seen), published, and
the forecast step stores its forecast of every later snapshot, each from the features
known at that snapshot. The stored forecasts then meet their outcomes, and the realized
skill and coverage of the 80% interval are measured, once with ``LIQUIDITY_REFIT=0`` (the
model fitted on its tuning rows, as scored) and once with ``LIQUIDITY_REFIT=1`` (refitted
on the tuning and holdout rows with the same parameters). Figures:
``refit_realized_skill_<panel>_{off,on}`` and ``refit_realized_coverage_<panel>_{off,on}``.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from .common import Results, Scale
from .panels import PANELS, panel_store

#: Snapshots replayed after the cut-off, per panel.
REPLAY = {"daily_dev": 365, "monthly_dev": 12}
#: Holdout snapshots of the training run before the cut-off, per panel.
HOLDOUT = {"daily_dev": 60, "monthly_dev": 6}


def _panels(scale: Scale) -> list:
    """The panels replayed: at the tiny scale (the smoke test) only the small monthly one."""
    names = ("monthly_dev",) if scale.name == "tiny" else tuple(REPLAY)
    return [p for p in PANELS if p.name in names]


def figure_names(scale: Scale) -> list[str]:
    return [
        f"refit_realized_{what}_{p.name}_{mode}"
        for p in _panels(scale)
        if p.available()
        for what in ("skill", "coverage")
        for mode in ("off", "on")
    ]


def replay(panel, *, refit: bool, grid: str) -> dict:
    """Realized skill and coverage of the model trained up to the cut-off."""
    from liquidity_core.monitoring import accuracy, forecasts
    from liquidity_core.store import db
    from liquidity_core.store.snapshots import SNAPSHOT_TIMES
    from liquidity_core.training.cycle import run_training_cycle

    # The training run before the cut-off holds out HOLDOUT snapshots, not the panel's own.
    held = replace(panel, holdout_snapshots=HOLDOUT[panel.name])
    with panel_store(held, LIQUIDITY_REFIT=int(refit)) as (settings, engine):
        with db.transaction(engine) as conn:
            times = [r[0] for r in conn.execute(SNAPSHOT_TIMES)]
        cutoff = times[-REPLAY[panel.name] - 1]
        trained = run_training_cycle(settings, until=cutoff, grid=grid, candidates=False)
        forecasts.forecast_new_snapshots(settings)
        (v,) = [
            x for x in accuracy.monitor(settings)["versions"] if x["version"] == trained["version"]
        ]
    return {"skill": v["skill"], "coverage": v["coverage"], "rows": v["rows"], "cutoff": cutoff}


def run(scale: Scale, results: Results) -> None:
    logging.getLogger("liquidity_core").setLevel(logging.WARNING)
    grid = "gate" if scale.name in ("tiny", "small") else "default"
    for panel in _panels(scale):
        if not panel.available():
            results.note("refit", f"{panel.name}: {panel.source} is absent, not measured")
            continue
        for mode, refit in (("off", False), ("on", True)):
            r = replay(panel, refit=refit, grid=grid)
            note = (
                f"trained up to {str(r['cutoff'])[:10]}, {REPLAY[panel.name]} snapshots "
                f"replayed, {r['rows']} outcomes; grid {grid}"
            )
            results.add(f"refit_realized_skill_{panel.name}_{mode}", r["skill"], "skill", note=note)
            results.add(
                f"refit_realized_coverage_{panel.name}_{mode}",
                r["coverage"],
                "share",
                goal="0.75..0.85",
            )
