"""The report's figures are readable: no overprinted dates, no years of empty axis around
one run, and the candidates charted with a failed one labelled."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest

from liquidity_core.reporting.data_section import turnover_over_time_figure
from liquidity_core.reporting.html import svg
from liquidity_core.reporting.model_plots import (
    PUBLISHED,
    candidate_rows,
    candidates_figure,
    history_figure,
)


def _panel(freq: str, periods: int, coins: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    times = pd.date_range("2021-01-01", periods=periods, freq=freq, tz="UTC")
    rows = [
        {
            "coin_id": f"coin-{c}",
            "snapshot_ts": t,
            "market_cap": 1e9 * (c + 1) * (1 + 0.01 * rng.standard_normal()),
            "volume_24h": 1e8 * (c + 1) * np.exp(0.3 * rng.standard_normal()),
        }
        for t, c in itertools.product(times, range(coins))
    ]
    return pd.DataFrame(rows)


def _overlaps(fig, labels) -> list[tuple[str, str]]:
    renderer = fig.canvas.get_renderer()
    boxes = [
        (label.get_text(), label.get_window_extent(renderer))
        for label in labels
        if label.get_visible() and label.get_text()
    ]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


@pytest.mark.parametrize(
    ("freq", "periods"),
    [
        ("h", 24),
        ("D", 2),
        ("D", 10),
        ("D", 24),
        ("W", 20),
        ("D", 3 * 365),
        ("MS", 60),
        ("h", 24 * 90),
    ],
)
def test_turnover_dates_never_overprint(freq, periods):
    fig, ax = turnover_over_time_figure(_panel(freq, periods))
    fig.canvas.draw()
    labels = ax.get_xticklabels()
    assert len([label for label in labels if label.get_text()]) >= 2
    assert _overlaps(fig, labels) == []
    # The concise formatter's offset (year, month) does not overprint the ticks either.
    assert _overlaps(fig, [*labels, ax.xaxis.get_offset_text()]) == []
    svg(fig)


def _versions(times, statuses):
    return pd.DataFrame(
        {
            "created_at": pd.to_datetime(times, utc=True),
            "version": [f"v{i}" for i in range(len(times))],
            "status": statuses,
            "holdout_r2": np.linspace(0.3, 0.4, len(times)),
            "persistence_r2": 0.2,
            "holdout_skill": 0.1,
        }
    )


def _x_days(ax) -> tuple[float, float]:
    lo, hi = ax.get_xlim()
    return lo, hi


def test_one_version_has_a_narrow_range_around_it():
    fig, ax = history_figure(_versions(["2027-06-01T02:00:00Z"], ["champion"]))
    lo, hi = _x_days(ax)
    run = mdates.date2num(pd.Timestamp("2027-06-01T02:00:00Z"))
    assert lo < run < hi
    assert hi - lo <= 2.0, "a single run spans about two days, not years"
    fig.canvas.draw()
    assert _overlaps(fig, ax.get_xticklabels()) == []
    svg(fig)


def test_runs_over_weeks_keep_their_own_range():
    times = pd.date_range("2027-01-01", periods=6, freq="7D", tz="UTC")
    fig, ax = history_figure(_versions(times, ["retired"] * 5 + ["champion"]))
    lo, hi = _x_days(ax)
    first, last = mdates.date2num(times[0]), mdates.date2num(times[-1])
    assert lo <= first and last <= hi
    assert (hi - lo) < 1.3 * (last - first)
    fig.canvas.draw()
    assert _overlaps(fig, ax.get_xticklabels()) == []
    svg(fig)


def _champion(candidates):
    return {"cv_r2_mean": 0.41, "holdout_r2": 0.38, "candidates": candidates}


def test_candidates_chart_bars_each_score_and_labels_a_failed_one():
    rows = candidate_rows(
        _champion(
            {
                "ridge": {"cv_r2_mean": 0.30, "holdout_r2": 0.28},
                "boosting": {"error": "ValueError: not enough rows\nTraceback ..."},
                "knn": {"cv_r2_mean": -0.2, "holdout_r2": None},
            }
        )
    )
    assert [r["candidate"] for r in rows] == [PUBLISHED, "ridge", "boosting", "knn"]
    assert rows[2]["error"] and not rows[1]["error"]
    fig, ax = candidates_figure(rows)
    bars = ax.patches
    assert len(bars) == 2 + 2 + 1, "two bars per scored candidate, none for the failed one"
    assert sorted(round(b.get_width(), 3) for b in bars) == [-0.2, 0.28, 0.3, 0.38, 0.41]
    texts = [t.get_text() for t in ax.texts]
    assert "failed: ValueError: not enough rows" in texts
    assert " no score" in texts
    failed_y = next(t.get_position()[1] for t in ax.texts if t.get_text().startswith("failed"))
    assert failed_y == 2 and all(abs(b.get_y() + b.get_height() / 2 - 2) > 0.1 for b in bars)
    assert [t.get_text() for t in ax.get_yticklabels()] == [r["candidate"] for r in rows]
    text = svg(fig)
    assert "failed" in text


def test_candidate_without_any_score_counts_as_failed():
    rows = candidate_rows(_champion({"empty": {}, "nan": {"cv_r2_mean": float("nan")}}))
    assert [r["error"] for r in rows] == [None, "no score", "no score"]
    fig, ax = candidates_figure(rows)
    assert len(ax.patches) == 2
    assert sum(t.get_text() == "failed: no score" for t in ax.texts) == 2
    svg(fig)


def test_candidate_names_are_escaped_in_the_svg():
    rows = candidate_rows(_champion({"<script>x</script>": {"cv_r2_mean": 0.1, "holdout_r2": 0.2}}))
    text = svg(candidates_figure(rows)[0])
    assert "<script" not in text
    ET.fromstring(text)  # well-formed: the name is escaped, not markup


def test_no_other_candidates_charts_the_published_model_alone():
    fig, ax = candidates_figure(candidate_rows(_champion(None)))
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.get_yticklabels()] == [PUBLISHED]
    svg(fig)
