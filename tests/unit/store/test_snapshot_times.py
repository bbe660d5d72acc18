"""The stored snapshot times, read one index probe at a time (a loose index scan), are the
distinct times ``SELECT DISTINCT`` gives, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from pathlib import Path

import sqlalchemy as sa

from liquidity_core.ingest import ingest_paths
from liquidity_core.store import schema
from liquidity_core.store.snapshots import (
    SNAPSHOT_TIMES,
    _distinct_times,
    recent_snapshots_query,
)
from tests.support.market_files import cg_file

_ts = schema.market_snapshots.c.snapshot_ts


def _store(settings, tmp_path: Path, days: list[str], coins_at) -> None:
    """One CoinGecko file: at each day, the coins ``coins_at(day)`` numbers."""
    rows = [(f"Coin {c}", f"C{c}", d, 1000 + c, 10 + c) for d in days for c in coins_at(d)]
    path = cg_file(tmp_path / "drop.csv", rows)
    (result,) = ingest_paths([path], settings=settings)
    assert result.status == "loaded", result.as_dict()


def _all(engine, query) -> list:
    with engine.connect() as conn:
        return conn.execute(query).scalars().all()


def test_nothing_stored_gives_no_times(engine):
    assert _all(engine, SNAPSHOT_TIMES) == []
    assert _all(engine, _distinct_times(newest=3)) == []
    with engine.connect() as conn:
        assert conn.execute(recent_snapshots_query(3)).fetchall() == []


def test_times_are_the_distinct_stored_times(engine, settings, tmp_path):
    rng = random.Random(7)
    # Irregular gaps, and a different number of coins at each time (one at some).
    days = sorted(
        {
            f"2024-{m:02d}-{d:02d}"
            for m, d in ((rng.randint(1, 12), rng.randint(1, 28)) for _ in range(40))
        }
    )
    _store(settings, tmp_path, days, lambda d: range(rng.randint(1, 6)))
    distinct = _all(engine, sa.select(_ts).distinct().order_by(_ts))
    assert len(distinct) == len(days)

    assert _all(engine, SNAPSHOT_TIMES) == distinct
    assert _all(engine, _distinct_times(newest=5)) == distinct[::-1][:5]
    assert _all(engine, _distinct_times(newest=1)) == distinct[-1:]
    assert _all(engine, _distinct_times(newest=len(days) + 10)) == distinct[::-1]


def test_recent_snapshots_are_every_row_at_the_newest_times(engine, settings, tmp_path):
    days = [f"2024-03-{d:02d}" for d in range(1, 11)]
    _store(settings, tmp_path, days, lambda d: range(1 + int(d[-2:]) % 3))
    with engine.connect() as conn:
        rows = conn.execute(recent_snapshots_query(4)).mappings().all()
        stored = conn.execute(
            sa.select(schema.market_snapshots.c.snapshot_ts).order_by(_ts)
        ).scalars()
        newest_four = sorted(set(stored))[-4:]
    assert sorted({r["snapshot_ts"] for r in rows}) == newest_four
    expected = sum(1 + int(d[-2:]) % 3 for d in days[-4:])
    assert len(rows) == expected
