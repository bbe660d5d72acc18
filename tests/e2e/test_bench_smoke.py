"""Smoke test of ``python -m bench``: every benchmark runs end to end at a tiny scale.

Not a timed test: the figures are not judged here (``make bench`` measures them). It
checks that each area runs without crashing, prints one line per figure and writes
``results.json`` holding every expected figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.database import PG_URL
from support.paths import REPO

if str(REPO) not in sys.path:  # bench/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from bench import AREAS, expected_figures  # noqa: E402


@pytest.mark.slow
def test_bench_runs_end_to_end_at_tiny_scale(tmp_path):
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set (the ingest and serving benchmarks need it)")
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIQUIDITY_", "BENCH_"))}
    env.update(BENCH_SCALE="tiny", BENCH_RESULTS=str(out), BENCH_DATABASE_URL=PG_URL)
    proc = subprocess.run(
        [sys.executable, "-m", "bench"],
        cwd=str(REPO),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = proc.stdout[-6000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, log

    results = json.loads(out.read_text())
    assert results["scale"] == "tiny"
    assert results["failed"] == [], log
    assert results["areas"] == list(AREAS)
    expected = expected_figures("tiny")
    missing = sorted(set(expected) - set(results["figures"]))
    assert not missing, f"figures missing from results.json: {missing}\n{log}"
    printed = {ln.split(":", 1)[0] for ln in proc.stdout.splitlines() if ":" in ln}
    assert set(expected) <= printed, sorted(set(expected) - printed)
    for name in expected:
        fig = results["figures"][name]
        assert fig["unit"] is not None and "value" in fig, (name, fig)
    # Ratios are only given where the reference was measured in the same run.
    assert results["figures"]["ingest_postgres"]["reference"] == "ingest_psql_copy"
    assert results["figures"]["ingest_postgres"]["ratio"] > 0


def test_bench_only_picks_areas_and_rejects_unknown_ones():
    from bench.__main__ import selected_areas

    assert selected_areas({}) == list(AREAS)
    assert selected_areas({"BENCH_ONLY": "retrain, ingest"}) == ["ingest", "retrain"]
    with pytest.raises(SystemExit, match="unknown areas"):
        selected_areas({"BENCH_ONLY": "ingest,bogus"})
