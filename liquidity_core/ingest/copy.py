"""Writing a checked file's rows: PostgreSQL COPY (CSV or binary streams into a staging
table, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``) and SQLite
``executemany`` of the same upsert, plus the ``rejected_rows``.

Every function here runs inside the caller's transaction (see :mod:`.pipeline`).
"""

from __future__ import annotations

from contextlib import suppress
from itertools import repeat

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from liquidity_core.ingest.binary_copy import binary_stream_of, extras_json
from liquidity_core.ingest.copy_io import ChunkStream, copy_stream
from liquidity_core.store import db
from liquidity_core.store.schema import MEASURES, SNAPSHOT_KEY, market_snapshots, rejected_rows
from liquidity_core.store.snapshots import format_ts


def row_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The good rows in storage form: UTC text times and extras as JSON text."""
    codes, uniques = pd.factorize(rows["snapshot_ts"])
    stamps = np.array([format_ts(u) for u in uniques], dtype=object)
    out = pd.DataFrame(
        {
            "coin_id": rows["coin_id"].astype(object),
            "snapshot_ts": stamps[codes],
            "coin_name": rows["coin_name"].astype(object),
            "symbol": rows["symbol"].astype(object),
        }
    )
    for col in MEASURES:
        out[col] = rows[col].to_numpy(dtype=float)
    out["extras"] = extras_json(rows)
    return out


def _csv_for_copy(frame: pd.DataFrame) -> str:
    """CSV text for ``COPY ... (FORMAT csv, NULL 'nan')``, built column by column.

    Text is always quoted (so a quoted ``"nan"`` is text); a missing value is an unquoted
    ``nan``. Floats are written with ``repr`` (exact round trip). Text columns are quoted
    once per distinct value. Much faster than ``DataFrame.to_csv`` for a million rows.
    """
    columns = []
    for name in frame.columns:
        values = frame[name]
        if values.dtype.kind in "iu":
            columns.append(list(map(str, values.tolist())))
            continue
        if values.dtype.kind == "f":
            columns.append(list(map(repr, values.to_numpy(dtype=float).tolist())))
            continue
        codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
        quoted = np.array(
            ['"' + str(u).replace('"', '""') + '"' for u in uniques] + ["nan"], dtype=object
        )
        columns.append(quoted[codes].tolist())
    if not columns or not len(frame):
        return ""
    return "\n".join(map(",".join, zip(*columns, strict=True))) + "\n"


class _CsvStream(ChunkStream):
    """A readable file of :func:`_csv_for_copy` text, built chunk by chunk as COPY reads.

    PostgreSQL stores one chunk while Python formats the next, so the two overlap.
    """

    def __init__(self, frame: pd.DataFrame, chunk_rows: int = 50_000):
        super().__init__(
            _csv_for_copy(frame.iloc[i : i + chunk_rows]).encode("utf-8")
            for i in range(0, len(frame), chunk_rows)
        )


def _copy(conn: Connection, sql: str, frame: pd.DataFrame) -> None:
    copy_stream(conn, sql, _CsvStream(frame))


#: Whether any snapshot is stored between two times (the COPY fast path needs none).
ANY_STORED_BETWEEN = sa.select(
    sa.exists().where(
        market_snapshots.c.snapshot_ts.between(sa.bindparam("lo"), sa.bindparam("hi"))
    )
)


def copied_directly(conn: Connection, copy) -> bool:
    """Run ``copy()`` (a COPY straight into ``market_snapshots``) inside a savepoint.

    Returns False, with the savepoint rolled back, when a key was already stored (a
    concurrent load stored some of the same keys meanwhile): the caller then stages the
    rows and upserts. Any other error also leaves the savepoint cleanly (a deadlock with a
    concurrent load, say) and is raised, so that ``_load_with_retry`` can run the whole
    transaction again.
    """
    savepoint = conn.begin_nested()
    try:
        copy()
    except _unique_violation():
        savepoint.rollback()
        return False
    except BaseException:
        with suppress(Exception):
            savepoint.rollback()
        raise
    savepoint.commit()
    return True


def upsert_postgres(conn: Connection, rows: pd.DataFrame, file_id: int) -> int:
    """COPY the good rows (canonical frame) in; returns how many were new.

    Fast path: when nothing is stored in the file's time range (new snapshots, the common
    case), binary COPY straight into ``market_snapshots`` inside a savepoint. Otherwise,
    or when a concurrent load stored some of the same keys meanwhile (unique violation),
    COPY into a staging table and upsert with ``ON CONFLICT DO NOTHING``.
    """
    conn.exec_driver_sql(db.query("ingest_stage_settings", "postgresql").text)
    span = {"lo": format_ts(rows["snapshot_ts"].min()), "hi": format_ts(rows["snapshot_ts"].max())}
    if not conn.execute(ANY_STORED_BETWEEN, span).scalar():
        direct = db.query("ingest_copy_direct", "postgresql").text
        if copied_directly(conn, lambda: _copy_binary(conn, direct, rows, file_id=file_id)):
            return len(rows)
    conn.exec_driver_sql(db.query("ingest_stage_create", "postgresql").text)
    _copy_binary(conn, db.query("ingest_stage_copy", "postgresql").text, rows)
    inserted = conn.execute(
        db.query("ingest_stage_upsert", "postgresql"), {"file_id": file_id}
    ).rowcount
    conn.exec_driver_sql("DROP TABLE ingest_stage")
    return int(inserted)


def _copy_binary(
    conn: Connection, sql: str, rows: pd.DataFrame, *, file_id: int | None = None
) -> None:
    copy_stream(conn, sql, binary_stream_of([rows], file_id=file_id))


def _unique_violation() -> type[BaseException]:
    from psycopg2.errors import UniqueViolation

    return UniqueViolation


#: The SQLite upsert, as text for the driver's ``executemany`` (named parameters).
_SQLITE_UPSERT = str(
    sqlite.insert(market_snapshots)
    .on_conflict_do_nothing(index_elements=list(SNAPSHOT_KEY))
    .compile(dialect=sqlite.dialect(paramstyle="named"))
)


def upsert_sqlite(
    conn: Connection, rows: pd.DataFrame, file_id: int, *, chunk_rows: int = 50_000
) -> int:
    """``executemany`` of the upsert, 50k rows at a time (bounded memory); rows inserted."""
    sql = _SQLITE_UPSERT
    names = [*rows.columns, "source_file_id"]
    inserted = 0
    cursor = conn.connection.driver_connection.cursor()
    try:
        for lo in range(0, len(rows), chunk_rows):
            chunk = rows.iloc[lo : lo + chunk_rows]
            columns = [
                chunk[c].astype(object).where(chunk[c].notna(), None).tolist() for c in rows.columns
            ]
            columns.append([file_id] * len(chunk))
            # map/zip/dict are C builtins: no Python bytecode runs per row.
            rows_iter = zip(*columns, strict=True)
            cursor.executemany(sql, map(dict, map(zip, repeat(names), rows_iter)))
            inserted += cursor.rowcount
        return inserted
    finally:
        cursor.close()


#: Columns written to ``rejected_rows`` (its id is generated), the COPY's order.
REJECTED_COLUMNS = tuple(c.name for c in rejected_rows.columns if not c.primary_key)


def insert_rejected(conn: Connection, rejected: pd.DataFrame, file_id: int) -> None:
    values = {
        "file_id": file_id,
        "line_number": rejected["line"].to_numpy(dtype=np.int64),
        "reason": rejected["reason"].astype(object),
        "raw_line": rejected["raw_line"].astype(object),
    }
    frame = pd.DataFrame({c: values[c] for c in REJECTED_COLUMNS})
    if db.dialect_of(conn) == "postgresql":
        _copy(conn, db.query("ingest_copy_rejected", "postgresql").text, frame)
    else:
        conn.execute(rejected_rows.insert(), frame.to_dict("records"))
