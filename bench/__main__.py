"""``python -m bench``: run the benchmarks, print one line per figure, write results.json."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import AREAS
from .common import Results, get_scale, machine_note, python_speed

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"


def selected_areas(env=None) -> list[str]:
    """Areas named by ``BENCH_ONLY`` (default: all), in the canonical order.

    ``BENCH_SCALE=huge`` runs only :mod:`bench.huge`.
    """
    env = os.environ if env is None else env
    if (env.get("BENCH_SCALE") or "").strip().lower() == "huge":
        return ["huge"]
    raw = (env.get("BENCH_ONLY") or "").strip()
    if not raw:
        return list(AREAS)
    wanted = [a.strip().lower() for a in raw.split(",") if a.strip()]
    unknown = sorted(set(wanted) - set(AREAS))
    if unknown:
        raise SystemExit(f"BENCH_ONLY names unknown areas {unknown}; choose among {list(AREAS)}")
    return [a for a in AREAS if a in wanted]


def main() -> int:
    scale = get_scale()
    areas = selected_areas()
    out = Path(os.environ.get("BENCH_RESULTS") or RESULTS_PATH)
    results = Results(scale)
    started = datetime.now(UTC)
    speed = python_speed()
    print(
        f"bench scale={scale.name} areas={','.join(areas)} ({machine_note()}; a million turns "
        f"of a Python loop take {speed} ms of CPU here)",
        flush=True,
    )
    failed: list[str] = []
    timings: dict[str, float] = {}

    def write() -> None:  # after every area, so a stopped run keeps what it measured
        payload = {
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "areas": areas,
            "area_seconds": timings,
            "failed": failed,
            "machine": machine_note(),
            "python_loop_ms_per_million": speed,
            "python": sys.version.split()[0],
            **results.as_dict(),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")

    for area in areas:
        t0 = time.perf_counter()
        print(f"--- {area}", flush=True)
        module = importlib.import_module(f"bench.{area}")
        try:
            module.run(scale, results)
        except Exception as exc:  # report, finish the other areas, then fail
            failed.append(area)
            results.note(area, f"FAILED: {type(exc).__name__}: {exc}")
            import traceback

            traceback.print_exc()
        timings[area] = round(time.perf_counter() - t0, 1)
        print(f"--- {area} done in {timings[area]:.0f}s ({machine_note()})", flush=True)
        write()
    write()
    print(f"wrote {out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
