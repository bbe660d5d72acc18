"""Writing a checked file's rows: PostgreSQL COPY (CSV or binary streams into a staging
table, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``) and SQLite
``executemany`` of the same upsert, plus the ``rejected_rows``.

Every function here runs inside the caller's transaction (see :mod:`.pipeline`).
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from contextlib import contextmanager, suppress
from itertools import repeat

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from .. import db
from ..model.snapshots import format_ts
from ..schema import MEASURES, SNAPSHOT_KEY, TS, market_snapshots, rejected_rows

log = logging.getLogger("liquidity_core.ingest")


def _row_frame(rows: pd.DataFrame) -> pd.DataFrame:
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
    out["extras"] = _extras_json(rows)
    return out


def _extras_json(rows: pd.DataFrame) -> np.ndarray:
    """``{"name": value, ...}`` per row from the ``x_*`` columns (None when there are none)."""
    body = None
    for col in [c for c in rows.columns if c.startswith("x_")]:
        values = rows[col].to_numpy(dtype=float)
        ok = ~np.isnan(values)
        frag = np.full(len(rows), "", dtype=object)
        frag[ok] = f'"{col[2:]}": ' + values[ok].astype(str).astype(object)
        if body is None:
            body = frag
        else:
            both = (body != "") & (frag != "")
            body = np.where(both, body + ", " + frag, body + frag)
    out = np.full(len(rows), None, dtype=object)
    if body is not None:
        has = body != ""
        out[has] = "{" + body[has] + "}"
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


class _ChunkStream(io.RawIOBase):
    """A readable file over an iterator of byte chunks, made as the reader (COPY) asks."""

    def __init__(self, chunks):
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not len(self._pending):
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _CsvStream(_ChunkStream):
    """A readable file of :func:`_csv_for_copy` text, built chunk by chunk as COPY reads.

    PostgreSQL stores one chunk while Python formats the next, so the two overlap.
    """

    def __init__(self, frame: pd.DataFrame, chunk_rows: int = 50_000):
        super().__init__(
            _csv_for_copy(frame.iloc[i : i + chunk_rows]).encode("utf-8")
            for i in range(0, len(frame), chunk_rows)
        )


def _copy(conn: Connection, sql: str, frame: pd.DataFrame) -> None:
    _copy_stream(conn, sql, _CsvStream(frame))


def _copy_stream(conn: Connection, sql: str, buf) -> None:
    # Bytes, in 1 MiB reads: fewer round trips than the 8 KiB default.
    cursor = conn.connection.driver_connection.cursor()
    try:
        with _c_stderr_to_log():
            cursor.copy_expert(sql, buf, size=1 << 20)
    finally:
        cursor.close()


@contextmanager
def _c_stderr_to_log():
    """Send what C code writes to stderr meanwhile to the log instead.

    When the server ends the connection in the middle of a COPY, psycopg2 prints a
    ``SystemError`` from its C code straight to stderr before raising the real error
    (which :func:`.pipeline._storage_error` turns into one line). The CLI promises one line.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said = sink.read().decode("utf-8", "replace").strip()
            if said:
                log.debug("the database driver printed during COPY: %s", said)


#: Whether any snapshot is stored between two times (the COPY fast path needs none).
_ANY_STORED_BETWEEN = sa.select(
    sa.exists().where(
        market_snapshots.c.snapshot_ts.between(sa.bindparam("lo"), sa.bindparam("hi"))
    )
)


def _upsert_postgres(conn: Connection, rows: pd.DataFrame, file_id: int) -> int:
    """COPY the good rows (canonical frame) in; returns how many were new.

    Fast path: when nothing is stored in the file's time range (new snapshots, the common
    case), binary COPY straight into ``market_snapshots`` inside a savepoint. Otherwise,
    or when a concurrent load stored some of the same keys meanwhile (unique violation),
    COPY into a staging table and upsert with ``ON CONFLICT DO NOTHING``.
    """
    conn.exec_driver_sql(db.query("ingest_stage_settings", "postgresql").text)
    span = {"lo": format_ts(rows["snapshot_ts"].min()), "hi": format_ts(rows["snapshot_ts"].max())}
    if not conn.execute(_ANY_STORED_BETWEEN, span).scalar():
        savepoint = conn.begin_nested()
        try:
            _copy_binary(
                conn, db.query("ingest_copy_direct", "postgresql").text, rows, file_id=file_id
            )
        except _unique_violation():
            savepoint.rollback()
        except BaseException:
            # e.g. a deadlock with a concurrent load: leave the savepoint cleanly, then let
            # _load_with_retry run the whole transaction again.
            with suppress(Exception):
                savepoint.rollback()
            raise
        else:
            savepoint.commit()
            return len(rows)
    conn.exec_driver_sql(db.query("ingest_stage_create", "postgresql").text)
    _copy_binary(conn, db.query("ingest_stage_copy", "postgresql").text, rows)
    inserted = conn.execute(
        db.query("ingest_stage_upsert", "postgresql"), {"file_id": file_id}
    ).rowcount
    conn.exec_driver_sql("DROP TABLE ingest_stage")
    return int(inserted)


# --- PostgreSQL binary COPY ------------------------------------------------------------------
#
# Each row is: int16 field count, then per field int32 length (-1 = NULL) and the bytes:
# float8 and int8 big-endian, timestamptz as int64 microseconds since 2000-01-01 UTC, text
# as UTF-8. Rows are assembled for a chunk at a time with numpy (no per-row Python), from
# per-column byte pools: one 12-byte cell per number, one cell per DISTINCT text value.


def _binary_kind(column: sa.Column) -> str:
    if isinstance(column.type, sa.Double):
        return "f8"
    if column.type is TS:
        return "ts"
    return "i8" if isinstance(column.type, sa.Integer) else "text"


_KIND_ORDER = ("f8", "ts", "i8", "text")
#: Column order of the binary COPY statements (sql/queries/ingest_*copy*.postgresql.sql):
#: ``market_snapshots`` grouped by kind (floats, the time, the file id, texts), in table
#: order within each kind; ``tests/test_schema.py`` checks the files against it.
BINARY_COLUMNS = tuple(
    c.name
    for c in sorted(market_snapshots.columns, key=lambda c: _KIND_ORDER.index(_binary_kind(c)))
)
_BINARY_KIND = {c.name: _binary_kind(c) for c in market_snapshots.columns}
_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_PG_TRAILER = b"\xff\xff"
_NULL_CELL = np.frombuffer(b"\xff\xff\xff\xff", dtype=np.uint8)
_LEN8 = np.frombuffer(b"\x00\x00\x00\x08", dtype=np.uint8)
_PG_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")


def _binary_columns(rows: pd.DataFrame, file_id: int | None) -> list[tuple[str, np.ndarray]]:
    micros = (
        (rows["snapshot_ts"].dt.as_unit("us") - _PG_EPOCH) // pd.Timedelta(microseconds=1)
    ).to_numpy(dtype=np.int64)
    columns: list[tuple[str, np.ndarray]] = []
    for name in BINARY_COLUMNS:
        kind = _BINARY_KIND[name]
        if name == "source_file_id":
            if file_id is not None:  # the staging table has no file id
                columns.append(("i8", np.full(len(rows), file_id, dtype=np.int64)))
        elif kind == "ts":
            columns.append(("i8", micros))
        elif name == "extras":
            columns.append(("text", _extras_json(rows)))
        elif kind == "f8":
            columns.append(("f8", rows[name].to_numpy(dtype=float)))
        else:
            columns.append(("text", rows[name].to_numpy(dtype=object)))
    return columns


def _cells(kind: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pool of bytes, start of each row's cell in the pool, length of each row's cell)."""
    n = len(values)
    if kind != "text":
        data = np.empty((n, 12), dtype=np.uint8)
        data[:, :4] = _LEN8
        data[:, 4:] = values.astype(">" + kind).view(np.uint8).reshape(n, 8)
        pool = np.concatenate([data.ravel(), _NULL_CELL])
        null = np.isnan(values) if kind == "f8" else np.zeros(n, dtype=bool)
        start = np.where(null, 12 * n, np.arange(n, dtype=np.int64) * 12)
        return pool, start, np.where(null, 4, 12)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    encoded = [str(u).encode("utf-8") for u in uniques]
    blob = b"".join(len(e).to_bytes(4, "big") + e for e in encoded) + _NULL_CELL.tobytes()
    lengths = np.array([len(e) + 4 for e in encoded] + [4], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.frombuffer(blob, dtype=np.uint8), starts[codes], lengths[codes]


def _encode_binary_rows(columns: list, lo: int, hi: int) -> bytes:
    cells = []
    for kind, values in columns:
        if kind == "text":  # values = (pool, start per row, length per row) for all rows
            pool, start, length = values
            cells.append((pool, start[lo:hi], length[lo:hi]))
        else:
            cells.append(_cells(kind, values[lo:hi]))
    row_len = 2 + sum(length for _, _, length in cells)
    row_start = np.concatenate([[0], np.cumsum(row_len)[:-1]])
    out = np.empty(int(row_len.sum()), dtype=np.uint8)
    out[row_start] = len(columns) >> 8
    out[row_start + 1] = len(columns) & 0xFF
    dst = row_start + 2
    for pool, start, length in cells:
        total = int(length.sum())
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
        out[np.repeat(dst, length) + within] = pool[np.repeat(start, length) + within]
        dst = dst + length
    return out.tobytes()


class _BinaryStream(_ChunkStream):
    """A readable file of PostgreSQL binary COPY data, encoded chunk by chunk as COPY reads."""

    def __init__(self, rows: pd.DataFrame, *, file_id: int | None, chunk_rows: int = 50_000):
        columns = [
            (kind, _cells(kind, values) if kind == "text" else values)
            for kind, values in _binary_columns(rows, file_id)
        ]
        n = len(rows)

        def chunks():
            yield _PG_HEADER
            for lo in range(0, n, chunk_rows):
                yield _encode_binary_rows(columns, lo, min(n, lo + chunk_rows))
            yield _PG_TRAILER

        super().__init__(chunks())


def _copy_binary(
    conn: Connection, sql: str, rows: pd.DataFrame, *, file_id: int | None = None
) -> None:
    _copy_stream(conn, sql, _BinaryStream(rows, file_id=file_id))


def _unique_violation() -> type[BaseException]:
    from psycopg2.errors import UniqueViolation

    return UniqueViolation


#: The SQLite upsert, as text for the driver's ``executemany`` (named parameters).
_SQLITE_UPSERT = str(
    sqlite.insert(market_snapshots)
    .on_conflict_do_nothing(index_elements=list(SNAPSHOT_KEY))
    .compile(dialect=sqlite.dialect(paramstyle="named"))
)


def _upsert_sqlite(
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


def _insert_rejected(conn: Connection, rejected: pd.DataFrame, file_id: int) -> None:
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
