"""The in-memory history's next snapshot time: what an API row without a date is taken as."""

from __future__ import annotations

import time

import pandas as pd
from support.panels import make_panel

from liquidity_core.serving.recent import DAY_NS, RecentHistory


def _history(panel: pd.DataFrame) -> RecentHistory:
    return RecentHistory(("test", None), panel)


def test_the_next_time_is_the_newest_plus_the_panels_cadence():
    panel = make_panel(coins=3, snapshots=6)  # daily
    start = panel["snapshot_ts"].min()
    weekly = panel.assign(snapshot_ts=start + (panel["snapshot_ts"] - start) * 7)
    for frame, step in ((panel, pd.Timedelta(days=1)), (weekly, pd.Timedelta(days=7))):
        newest = frame["snapshot_ts"].max()
        assert _history(frame).next_time() == (newest + step).value


def test_one_stored_time_steps_a_day_and_an_empty_store_gives_now():
    one = make_panel(coins=3, snapshots=1)
    assert _history(one).next_time() == one["snapshot_ts"].max().value + DAY_NS
    before = time.time_ns()
    assert before <= _history(one.iloc[:0]).next_time() <= time.time_ns()
