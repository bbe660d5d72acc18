"""Skill: forecast skill against persistence per panel, as the nightly trainer gets it.

Every panel of :mod:`bench.panels` (``daily_dev``, ``monthly_dev``, ``synthetic``) is
ingested into a fresh store and trained on with the nightly grid (``default``; ``fast`` at
the tiny scale), its newest snapshots held out. Figures per panel: ``skill_<panel>``
(1 - MSE / MSE(persistence) on the holdout), ``skill_<panel>_beat_share`` (the share of
holdout snapshots where the model beats persistence) and ``interval_coverage_<panel>``
(the holdout share inside the nominal 80% interval, goal 0.75-0.85, by market-cap tercile
in the note). The note also gives the blend weight CV chose and its CV R² at each weight.
The CI gate (:mod:`bench.gate`) measures the same panels with a one-forest grid.
"""

from __future__ import annotations

from .common import Results, Scale
from .panels import PANELS, describe, measure


def figure_names(scale: Scale) -> list[str]:
    return [
        f"{what}_{p.name}{suffix}"
        for p in PANELS
        if p.available()
        for what, suffix in (("skill", ""), ("skill", "_beat_share"), ("interval_coverage", ""))
    ]


def run(scale: Scale, results: Results) -> None:
    grid = "fast" if scale.name == "tiny" else "default"
    for panel in PANELS:
        if not panel.available():
            results.note("skill", f"{panel.name}: {panel.source} is absent, not measured")
            continue
        r = measure(panel, grid)
        results.note("skill", describe(panel.name, r))
        by_blend = ", ".join(f"{w}: {v:.4f}" for w, v in (r["cv_r2_by_blend"] or {}).items())
        results.add(
            f"skill_{panel.name}",
            r["skill"],
            "skill",
            note=f"holdout R² {r['holdout_r2']:.4f} (persistence {r['persistence_r2']:.4f}); "
            f"CV R² by blend weight {by_blend}",
            **r,
        )
        results.add(f"skill_{panel.name}_beat_share", r["snapshots_beating_persistence"], "share")
        results.add(
            f"interval_coverage_{panel.name}",
            r["coverage"],
            "share",
            goal="0.75..0.85",
            note="by market-cap tercile "
            + ", ".join("-" if v is None else f"{v:.3f}" for v in r["coverage_by_tercile"]),
        )
