"""The ingest ledger's record of each file: what a reader of ``ingest_files`` relies on."""

import sqlalchemy as sa

from liquidity_core.ingest import ingest_paths
from liquidity_core.store.schema import ingest_files

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
