"""Search: the nightly's cheap grid search against the full-size one, per panel.

The nightly search grows fold forests of ``SEARCH_TREES["default"]`` trees and fits the
chosen combination with the grid's own number (120). This area runs both searches on the
same tuning rows and folds of every panel of :mod:`bench.panels` (the staged rows of the
trainer's own first stage) and reports:

- ``search_<panel>_cpu_ratio``: CPU seconds of the cheap search / the full-size one, both
  measured here, one after the other;
- ``search_<panel>_cv_gap``: the full-size search's mean CV R² at its own best
  (combination, blend weight) minus its CV R² at the cheap search's choice: 0 when they
  choose the same, and how much CV the cheap choice gives up otherwise. The goal is the
  one-standard-error rule of model selection: the gap is at most the standard error of
  the two choices' paired fold differences, so CV cannot tell them apart.

Both searches are scored on the same folds at every blend weight; the note names each
choice. Not run at the tiny scale (its ``fast`` grid has no cheap search).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from .common import Results, Scale
from .panels import PANELS, panel_store, staged_rows


def figure_names(scale: Scale) -> list[str]:
    if scale.name == "tiny":
        return []
    return [
        f"search_{p.name}_{what}"
        for p in PANELS
        if p.available()
        for what in ("cpu_ratio", "cv_gap")
    ]


def run(scale: Scale, results: Results) -> None:
    if scale.name == "tiny":
        results.note("search", "not run at the tiny scale (the fast grid has no cheap search)")
        return
    for panel in PANELS:
        if not panel.available():
            results.note("search", f"{panel.name}: {panel.source} is absent, not measured")
            continue
        r = compare(panel)
        cheap, full = r["cheap"], r["full"]
        results.add(
            f"search_{panel.name}_cpu_ratio",
            cheap["cpu_seconds"] / full["cpu_seconds"],
            "x",
            goal="< 1",
            note=f"CPU {cheap['cpu_seconds']:.1f}s ({cheap['trees']} trees per fold forest) "
            f"vs {full['cpu_seconds']:.1f}s ({full['trees']} trees); wall "
            f"{cheap['seconds']:.1f}s vs {full['seconds']:.1f}s; {r['rows']:,} tuning rows",
            **r,
        )
        results.add(
            f"search_{panel.name}_cv_gap",
            r["cv_gap"],
            "R²",
            goal=f"<= {r['cv_gap_se']:.6f}",  # one standard error: CV can't tell them apart
            note=f"cheap chose {cheap['choice']}, full-size chose {full['choice']}; "
            f"full-size CV at the cheap choice {r['full_cv_at_cheap_choice']:.4f}, "
            f"at its own {full['cv']:.4f} (standard error of the paired fold differences "
            f"{r['cv_gap_se']:.4f})",
        )


def compare(panel) -> dict:
    """Both searches on ``panel``'s staged tuning rows: their choices, CV and cost."""
    from liquidity_core.learn.estimators import best_blend, blend_key
    from liquidity_core.learn.splits import PanelTimeSeriesSplit
    from liquidity_core.training.candidates import GRIDS, run_search, search_grid
    from liquidity_core.training.cycle import GAP

    logging.getLogger("liquidity_core").setLevel(logging.WARNING)
    with panel_store(panel) as (settings, _engine):
        rows = staged_rows(settings, f"search-{panel.name}")
        cv = PanelTimeSeriesSplit(settings.cv_splits, gap=GAP)
        searches = {}
        for name, grid in (("cheap", search_grid("default")), ("full", GRIDS["default"])):
            t0, c0 = time.perf_counter(), time.process_time()
            search, _ = run_search(settings, grid, rows.X_tune, rows.y_tune, rows.t_tune, cv)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            i, w = best_blend(search.cv_results_)
            params = search.cv_results_["params"][i]
            searches[name] = {
                "search": search,
                "index": i,
                "weight": w,
                "choice": _choice(params, w),
                "trees": params["model__n_estimators"],
                "cv": float(search.cv_results_[f"mean_test_{blend_key(w)}"][i]),
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
            }
    cheap, full = searches["cheap"], searches["full"]
    # The cheap choice's combination in the full-size grid (same parameters, more trees).
    at = [
        k
        for k, p in enumerate(full["search"].cv_results_["params"])
        if _choice(p, cheap["weight"]) == cheap["choice"]
    ]
    results = full["search"].cv_results_
    cv_at_cheap = float(results[f"mean_test_{blend_key(cheap['weight'])}"][at[0]])
    diffs = np.array(
        [
            results[f"split{k}_test_{blend_key(full['weight'])}"][full["index"]]
            - results[f"split{k}_test_{blend_key(cheap['weight'])}"][at[0]]
            for k in range(settings.cv_splits)
        ]
    )
    se = float(np.std(diffs, ddof=1) / np.sqrt(len(diffs)))
    for s in searches.values():
        del s["search"]
    return {
        "cheap": cheap,
        "full": full,
        "rows": int(len(rows.y_tune)),
        "full_cv_at_cheap_choice": cv_at_cheap,
        "cv_gap": full["cv"] - cv_at_cheap,
        "cv_gap_se": se,
    }


def _choice(params: dict, weight: float) -> str:
    """A combination and blend weight, without the number of trees."""
    shown = {k.removeprefix("model__"): v for k, v in params.items() if k != "model__n_estimators"}
    return f"{shown} at blend {weight:g}"
