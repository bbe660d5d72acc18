"""The skill gate's rule (bench/gate.py): a panel fails below its baseline or off coverage."""

from __future__ import annotations

from bench.gate import COVERAGE, TOLERANCE, verdicts

BASE = {"monthly_dev": {"skill": 0.25, "coverage": 0.80}}


def test_a_panel_within_the_tolerance_passes():
    figures = {"monthly_dev": {"skill": 0.25 - TOLERANCE + 0.001, "coverage": 0.80}}
    assert verdicts(figures, BASE) == []


def test_a_panel_that_lost_skill_fails_and_is_named():
    figures = {"monthly_dev": {"skill": 0.25 - TOLERANCE - 0.001, "coverage": 0.80}}
    (failure,) = verdicts(figures, BASE)
    assert failure.startswith("monthly_dev: skill") and "below its baseline" in failure


def test_coverage_outside_the_band_fails_even_with_skill():
    for coverage in (COVERAGE[0] - 0.01, COVERAGE[1] + 0.01):
        figures = {"monthly_dev": {"skill": 0.30, "coverage": coverage}}
        (failure,) = verdicts(figures, BASE)
        assert "coverage" in failure


def test_a_panel_without_a_baseline_fails():
    (failure,) = verdicts({"daily_dev": {"skill": 0.3, "coverage": 0.8}}, BASE)
    assert "no baseline" in failure
