"""Writing a checked file's rows: PostgreSQL COPY (CSV or binary streams into a staging
table, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``) and SQLite
``executemany`` of the same upsert, plus the ``rejected_rows``.

Every function here runs inside the caller's transaction (see :mod:`.pipeline`).
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import queue
import tempfile
import threading
from contextlib import contextmanager, suppress
from itertools import repeat

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from liquidity_core.store import db
from liquidity_core.store.schema import MEASURES, SNAPSHOT_KEY, TS, market_snapshots, rejected_rows
from liquidity_core.store.snapshots import format_ts

log = logging.getLogger("liquidity_core.ingest")


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
        self.error: BaseException | None = None  # what making a chunk raised

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not len(self._pending):
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:  # the driver reports it as a failed COPY
                self.error = exc
                raise
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
    copy_stream(conn, sql, _CsvStream(frame))


def copy_stream(conn: Connection, sql: str, buf) -> None:
    # Bytes, in 1 MiB reads: fewer round trips than the 8 KiB default.
    cursor = conn.connection.driver_connection.cursor()
    try:
        with _c_stderr_to_log():
            cursor.copy_expert(sql, buf, size=1 << 20)
    except Exception:
        if getattr(buf, "error", None) is not None:  # e.g. a piece of the file was rejected
            raise buf.error from None
        raise
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


# --- PostgreSQL binary COPY ------------------------------------------------------------------
#
# Each row is: int16 field count, then per field int32 length (-1 = NULL) and the bytes:
# float8 and int8 big-endian, timestamptz as int64 microseconds since 2000-01-01 UTC, text
# as UTF-8. Rows are encoded a chunk at a time with numpy, never per row in Python: rows
# with the same layout (which numbers are NULL, and the length of their text cells, which
# repeat per coin) are written as one (rows x width) byte matrix, column block by column
# block. COPY does not depend on row order, so the rows go out grouped by layout.


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
_FLOATS = tuple(c for c in BINARY_COLUMNS if _BINARY_KIND[c] == "f8")
#: The text cells, in COPY order; with NULL-able ``extras`` they repeat per coin.
_TEXTS = tuple(c for c in BINARY_COLUMNS if _BINARY_KIND[c] == "text")
_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_PG_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_LEN8 = np.frombuffer(b"\x00\x00\x00\x08", dtype=np.uint8)
_PG_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")


def _text_cell(value) -> bytes:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return _NULL
    data = str(value).encode("utf-8")
    return len(data).to_bytes(4, "big") + data


def _fixed(values: np.ndarray, kind: str) -> np.ndarray:
    """(n, 12) bytes: length 8, then the big-endian value."""
    out = np.empty((len(values), 12), dtype=np.uint8)
    out[:, :4] = _LEN8
    out[:, 4:] = values.astype(">" + kind).view(np.uint8).reshape(len(values), 8)
    return out


def _encode_binary_rows(rows: pd.DataFrame, *, file_id: int | None, line: bool) -> bytes:
    """The binary COPY bytes of ``rows`` (canonical frame; see the comment above)."""
    n = len(rows)
    if not n:
        return b""
    floats = [rows[c].to_numpy(dtype=float) for c in _FLOATS]
    null = np.column_stack([np.isnan(f) for f in floats])
    pattern = null.astype(np.int64) @ (1 << np.arange(len(_FLOATS), dtype=np.int64))
    micros = (
        (rows["snapshot_ts"].dt.as_unit("us") - _PG_EPOCH) // pd.Timedelta(microseconds=1)
    ).to_numpy(dtype=np.int64)
    # The text cells (coin_id, coin_name, symbol, extras) of each distinct combination.
    text = pd.DataFrame(
        {c: _extras_json(rows) if c == "extras" else rows[c].to_numpy(dtype=object) for c in _TEXTS}
    )
    combo = text.groupby(list(text.columns), sort=False, dropna=False).ngroup().to_numpy()
    firsts = np.unique(combo, return_index=True)[1]
    tails = [b"".join(map(_text_cell, values)) for values in text.to_numpy()[firsts]]
    tail_len = np.array([len(t) for t in tails], dtype=np.int64)
    n_fields = len(_FLOATS) + 1 + (file_id is not None) + len(_TEXTS) + line
    head = np.frombuffer(n_fields.to_bytes(2, "big"), dtype=np.uint8)
    key = pattern * (int(tail_len.max()) + 1) + tail_len[combo]
    out = []
    for k in np.unique(key):
        idx = np.flatnonzero(key == k)
        nulls = null[idx[0]]
        width = 2 + sum(4 if z else 12 for z in nulls) + 12 * (1 + (file_id is not None) + line)
        size = int(tail_len[combo[idx[0]]])
        block = np.empty((len(idx), width + size), dtype=np.uint8)
        block[:, :2] = head
        pos = 2
        for values, z in zip(floats, nulls, strict=True):
            if z:
                block[:, pos : pos + 4] = 0xFF
                pos += 4
            else:
                block[:, pos : pos + 12] = _fixed(values[idx], "f8")
                pos += 12
        block[:, pos : pos + 12] = _fixed(micros[idx], "i8")
        pos += 12
        if file_id is not None:
            block[:, pos : pos + 12] = _fixed(np.array([file_id], dtype=np.int64), "i8")
            pos += 12
        codes, inverse = np.unique(combo[idx], return_inverse=True)
        matrix = np.frombuffer(b"".join(tails[c] for c in codes), dtype=np.uint8)
        block[:, pos : pos + size] = matrix.reshape(len(codes), size)[inverse.ravel()]
        pos += size
        if line:
            block[:, pos : pos + 12] = _fixed(rows["line"].to_numpy(dtype=np.int64)[idx], "i8")
        out.append(block.tobytes())
    return b"".join(out)


def binary_stream_of(frames, *, file_id: int | None, line: bool = False, chunk_rows=100_000):
    """A readable file of binary COPY data for the rows of ``frames`` (an iterable of
    canonical frames), encoded chunk by chunk by a thread a few chunks ahead of COPY
    (:func:`_made_ahead`), so parsing the next piece overlaps the server storing this one."""

    def chunks():
        yield _PG_HEADER
        for rows in frames:
            for lo in range(0, len(rows), chunk_rows):
                yield _encode_binary_rows(
                    rows.iloc[lo : lo + chunk_rows], file_id=file_id, line=line
                )
        yield _PG_TRAILER

    return _ChunkStream(_made_ahead(chunks()))


#: Chunks :func:`_made_ahead` may hold ready (about 10 MB each at 100,000 rows).
AHEAD_CHUNKS = 4


def _made_ahead(items, depth: int = AHEAD_CHUNKS):
    """``items``, made by a thread at most ``depth`` ahead of the reader.

    COPY reads in the caller's thread, and the driver releases the GIL while it waits on
    the socket, so the next chunks are parsed and encoded while the server stores the
    sent ones: without this, a chunk was made only once the server had taken the one
    before. An error in the thread is raised here, in order; when the reader stops early
    (a failed COPY) the thread stops after the item it is making.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            with suppress(queue.Full):
                ready.put(entry, timeout=0.1)
                return True
        return False

    def make() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the reader, raised in its thread
            put(("error", exc))

    # The caller's context goes along, so the pieces' progress reaches its progress task.
    context = contextvars.copy_context()
    maker = threading.Thread(target=context.run, args=(make,), name="copy-encode", daemon=True)
    maker.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        maker.join()


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
