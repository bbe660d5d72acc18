"""The ingest ledger's record of each file: what a reader of ``ingest_files`` relies on."""

import logging
import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa
from support.faults import fail_inserts, inserts_tried

from liquidity_core.errors import DatabaseError
from liquidity_core.ingest import ingest_paths
from liquidity_core.store import db
from liquidity_core.store.schema import ingest_files, market_snapshots

HEADER = "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date"


def write(path, *lines):
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def rows(engine):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(ingest_files).order_by("id")).mappings()]


def test_loaded_and_duplicate_files_are_recorded_with_their_counts(settings, engine, tmp_path):
    lines = ("A,A,1,0,0,0,1,10,2022-03-16", "B,B,2,0,0,0,1,10,2022-03-16")
    first = write(tmp_path / "first.csv", *lines)
    (loaded,) = ingest_paths([first], settings=settings)
    again = tmp_path / "again.csv"
    again.write_bytes(first.read_bytes())
    (dup,) = ingest_paths([again], settings=settings)
    assert (dup.status, dup.duplicate_of) == ("duplicate", loaded.file_id)
    a, b = rows(engine)
    assert (a["status"], a["file_format"], a["rows_in_file"], a["rows_loaded"]) == (
        "loaded",
        "coingecko",
        2,
        2,
    )
    assert a["rows_existing"] == 0 and a["rows_rejected"] == 0 and a["error"] is None
    assert b["status"] == "duplicate"
    assert (b["rows_loaded"], b["rows_rejected"]) == (0, 0)  # found by its bytes, unread
    assert b["duplicate_of"] == a["id"] and b["error"] == dup.error
    assert b["error"].startswith(f"same bytes as file_id={a['id']} (first.csv), loaded at ")
    assert b["sha256"] == a["sha256"] and b["file_name"] == "again.csv"


def test_an_overlapping_file_counts_the_rows_already_stored(settings, engine, tmp_path):
    ingest_paths([write(tmp_path / "one.csv", "A,A,1,0,0,0,1,10,2022-03-16")], settings=settings)
    two = write(tmp_path / "two.csv", "A,A,1,0,0,0,1,10,2022-03-16", "B,B,2,0,0,0,1,10,2022-03-16")
    (r,) = ingest_paths([two], settings=settings)
    assert (r.rows_loaded, r.rows_existing) == (1, 1)
    row = rows(engine)[-1]
    assert (row["rows_in_file"], row["rows_loaded"], row["rows_existing"]) == (2, 1, 1)


def test_a_quarantined_file_is_recorded_with_its_format_and_rejected_rows(
    settings, engine, tmp_path
):
    bad = write(tmp_path / "bad.csv", "A,A,x,0,0,0,1,1,2022-03-16", ",B,1,0,0,0,1,1,2022-03-16")
    (r,) = ingest_paths([bad], settings=settings)
    assert r.status == "quarantined" and r.rows_rejected == 2
    row = rows(engine)[-1]
    assert (row["status"], row["file_format"], row["rows_rejected"]) == (
        "quarantined",
        "coingecko",
        2,
    )
    assert row["rows_in_file"] == 2 and row["rows_loaded"] == 0
    assert row["duplicate_of"] is None and row["error"] == r.error
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("when,what\n1,2\n")
    (u,) = ingest_paths([unknown], settings=settings)
    row = rows(engine)[-1]
    assert (row["status"], row["file_format"], row["rows_rejected"]) == ("quarantined", None, 0)


def test_the_ledger_times_are_utc_whatever_the_local_zone(settings, engine, tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    try:
        ingest_paths(
            [write(tmp_path / "one.csv", "A,A,1,0,0,0,1,10,2022-03-16")], settings=settings
        )
    finally:
        monkeypatch.undo()
        time.tzset()
    (row,) = rows(engine)
    now = pd.Timestamp.now(tz="UTC")
    for column in ("started_at", "finished_at"):
        age = now - pd.Timestamp(row[column])
        assert pd.Timedelta(0) <= age < pd.Timedelta(minutes=5), column


# --- conflicts with a concurrent load (PostgreSQL) ---------------------------------------------


def postgres_only(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("deadlocks and serialization failures are PostgreSQL's (SQLite has one writer)")


def snapshots(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(market_snapshots)).scalar()


def retry_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying ")]


def test_a_load_that_deadlocks_is_retried_and_loads_each_row_once(
    settings, engine, tmp_path, caplog
):
    postgres_only(engine)
    fail_inserts(engine, 3)
    new = write(tmp_path / "new.csv", "A,A,1,0,0,0,1,10,2022-03-16", "B,B,2,0,0,0,1,10,2022-03-16")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="liquidity_core.ingest"):
        (r,) = ingest_paths([new], settings=settings)
    waited = time.monotonic() - started
    assert (r.status, r.rows_loaded, r.rows_existing, r.rows_rejected) == ("loaded", 2, 0, 0)
    assert snapshots(engine) == 2 and inserts_tried(engine) == 4
    (row,) = rows(engine)
    assert (row["status"], row["rows_loaded"], row["id"]) == ("loaded", 2, r.file_id)
    assert retry_warnings(caplog) == [
        f"retrying {new} after deadlock detected (attempt {n})" for n in (1, 2, 3)
    ]
    # It backs off (0.2 s, 0.4 s, 0.6 s) but does not stall the run ...
    assert 1.2 <= waited < 4.5
    # ... and the ledger says when the load finished, retries included (whole seconds).
    took = pd.Timestamp(row["finished_at"]) - pd.Timestamp(row["started_at"])
    assert took >= pd.Timedelta(seconds=1)


def test_an_overlapping_load_that_hits_a_serialization_failure_is_retried(
    settings, engine, tmp_path, caplog
):
    postgres_only(engine)
    one = write(tmp_path / "one.csv", "A,A,1,0,0,0,1,10,2022-03-16")
    ingest_paths([one], settings=settings)
    # Rows already stored in the file's time range: the upsert through a staging table.
    fail_inserts(engine, 1, "40001", "could not serialize access")
    two = write(tmp_path / "two.csv", "A,A,1,0,0,0,1,10,2022-03-16", "B,B,2,0,0,0,1,10,2022-03-16")
    with caplog.at_level(logging.WARNING, logger="liquidity_core.ingest"):
        (r,) = ingest_paths([two], settings=settings)
    assert (r.status, r.rows_loaded, r.rows_existing) == ("loaded", 1, 1)
    assert snapshots(engine) == 2 and inserts_tried(engine) == 2
    assert retry_warnings(caplog) == [
        f"retrying {two} after could not serialize access (attempt 1)"
    ]
    assert [(x["status"], x["rows_loaded"]) for x in rows(engine)] == [
        ("loaded", 1),
        ("loaded", 1),
    ]


def test_a_load_that_keeps_deadlocking_gives_up_after_five_attempts_and_stores_nothing(
    settings, engine, tmp_path, caplog
):
    postgres_only(engine)
    fail_inserts(engine, 100)
    new = write(tmp_path / "new.csv", "A,A,1,0,0,0,1,10,2022-03-16")
    with caplog.at_level(logging.WARNING, logger="liquidity_core.ingest"):
        with pytest.raises(DatabaseError) as caught:
            ingest_paths([new], settings=settings)
    where = db.describe_url(settings.database_url)
    assert str(caught.value) == (
        f"the database at {where} kept reporting 'deadlock detected' while loading new.csv "
        "(5 attempts); nothing from it was stored"
    )
    assert inserts_tried(engine) == 5 and len(retry_warnings(caplog)) == 4
    assert snapshots(engine) == 0 and rows(engine) == []
    assert new.exists()


def test_a_failure_that_is_no_conflict_is_not_retried(settings, engine, tmp_path, caplog):
    postgres_only(engine)
    fail_inserts(engine, 100, "53100", "could not extend file: No space left on device")
    new = write(tmp_path / "new.csv", "A,A,1,0,0,0,1,10,2022-03-16")
    with caplog.at_level(logging.WARNING, logger="liquidity_core.ingest"):
        with pytest.raises(DatabaseError, match="has no room: could not extend file"):
            ingest_paths([new], settings=settings)
    assert inserts_tried(engine) == 1 and retry_warnings(caplog) == []
    assert snapshots(engine) == 0 and rows(engine) == []


def test_two_concurrent_loads_of_the_same_file_load_it_once(settings, engine, tmp_path):
    postgres_only(engine)
    same = write(
        tmp_path / "same.csv", "A,A,1,0,0,0,1,10,2022-03-16", "B,B,2,0,0,0,1,10,2022-03-16"
    )
    results: list = []
    with engine.connect() as gate:
        # Both runs find no loaded copy, then wait at their claim until the gate opens: each
        # then tries to claim the same bytes in a transaction of its own.
        gate.exec_driver_sql("LOCK TABLE ingest_files IN EXCLUSIVE MODE")
        runs = [
            threading.Thread(target=lambda: results.extend(ingest_paths([same], settings=settings)))
            for _ in range(2)
        ]
        for run in runs:
            run.start()
        waiting = (
            "SELECT count(*) FROM pg_locks "
            "WHERE NOT granted AND relation = 'ingest_files'::regclass"
        )
        deadline = time.monotonic() + 60
        while (
            gate.exec_driver_sql(waiting).scalar() < 2
            and all(r.is_alive() for r in runs)
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert gate.exec_driver_sql(waiting).scalar() == 2
        gate.commit()
    for run in runs:
        run.join(timeout=60)
    assert sorted(r.status for r in results) == ["duplicate", "loaded"]
    loaded = next(r for r in results if r.status == "loaded")
    dup = next(r for r in results if r.status == "duplicate")
    assert (loaded.rows_loaded, dup.rows_loaded, dup.duplicate_of) == (2, 0, loaded.file_id)
    assert snapshots(engine) == 2
    a, b = rows(engine)
    assert (a["status"], b["status"], b["duplicate_of"]) == ("loaded", "duplicate", a["id"])
    assert (b["error"], b["file_format"]) == (dup.error, "coingecko")
    assert b["error"].startswith(f"same bytes as file_id={a['id']} (same.csv), loaded at ")
