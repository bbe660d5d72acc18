"""The skill gate: a change that costs a panel its forecast skill turns CI red.

``python -m bench.gate`` measures every panel of :mod:`bench.panels` with the trainer's
``gate`` grid (one forest: minutes on 2 cores) and compares each with the committed
baseline, ``bench/skill_baseline.json``. It fails (exit 1) when a panel's skill falls more
than :data:`TOLERANCE` below its baseline, or its holdout coverage of the 80% interval
leaves :data:`COVERAGE`. A panel whose data files are absent is reported and skipped.

``python -m bench.gate --write-baseline`` writes today's figures as the baseline. The
baseline moves only in a commit that gives the new figures and why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .panels import PANELS, describe, measure

BASELINE = Path(__file__).resolve().parent / "skill_baseline.json"
GRID = "gate"
#: How far below its baseline a panel's skill may fall.
TOLERANCE = 0.02
#: Where the holdout coverage of the nominal 80% interval must stay.
COVERAGE = (0.75, 0.85)


def verdicts(figures: dict, baseline: dict) -> list[str]:
    """The gate's failures: one line per panel and rule broken (empty: the gate passes)."""
    failures = []
    for name, r in figures.items():
        base = baseline.get(name)
        if base is None:
            failures.append(f"{name}: no baseline (run `python -m bench.gate --write-baseline`)")
            continue
        if r["skill"] < base["skill"] - TOLERANCE:
            failures.append(
                f"{name}: skill {r['skill']:.4f} is more than {TOLERANCE} below its baseline "
                f"{base['skill']:.4f}"
            )
        low, high = COVERAGE
        if not low <= r["coverage"] <= high:
            failures.append(f"{name}: holdout coverage {r['coverage']:.3f} is outside {low}-{high}")
    return failures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    figures = {}
    for panel in PANELS:
        if not panel.available():
            print(f"{panel.name}: {panel.source} is absent, not measured", flush=True)
            continue
        figures[panel.name] = measure(panel, GRID)
        print(describe(panel.name, figures[panel.name]), flush=True)
    if "--write-baseline" in argv:
        kept = {k: {"skill": v["skill"], "coverage": v["coverage"]} for k, v in figures.items()}
        BASELINE.write_text(json.dumps({"grid": GRID, "panels": kept}, indent=2) + "\n")
        print(f"baseline written to {BASELINE}")
        return 0
    baseline = json.loads(BASELINE.read_text())["panels"]
    failures = verdicts(figures, baseline)
    for name in figures:
        base = baseline.get(name, {})
        print(
            f"{name}: skill {figures[name]['skill']:.4f} (baseline {base.get('skill', 'n/a')}), "
            f"coverage {figures[name]['coverage']:.3f}"
        )
    if failures:
        print("skill gate FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"skill gate passed: {len(figures)} panel(s) within {TOLERANCE} of their baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
