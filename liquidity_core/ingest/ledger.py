"""The ``ingest_files`` ledger and the one transaction that loads a file.

:func:`load_with_retry` claims the ledger row, stores the good rows (COPY on PostgreSQL,
``executemany`` on SQLite, see :mod:`.copy`) and the rejected rows, and finishes the
ledger row, all in one transaction, retried on a deadlock with a concurrent load.
:func:`record_duplicate` and :func:`record_quarantined` record files that load no rows.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from liquidity_core.errors import DatabaseError, LiquidityError
from liquidity_core.ingest.copy import (
    insert_rejected,
    row_frame,
    upsert_postgres,
    upsert_sqlite,
)
from liquidity_core.ingest.result import IngestResult
from liquidity_core.store import db, identity
from liquidity_core.store.schema import ingest_files
from liquidity_core.store.snapshots import format_ts, to_utc

log = logging.getLogger("liquidity_core.ingest")


def now_text() -> str:
    return format_ts(pd.Timestamp(datetime.now(UTC)))


_files = ingest_files

#: The ledger row that loaded these bytes, if any (at most one: a partial unique index).
_FIND_LOADED = sa.select(_files.c.id, _files.c.file_name, _files.c.finished_at).where(
    _files.c.sha256 == sa.bindparam("sha256"), _files.c.status == "loaded"
)


def find_loaded(engine: Engine, sha: str):
    with db.transaction(engine) as conn:
        return conn.execute(_FIND_LOADED, {"sha256": sha}).first()


def _record_file(conn: Connection, base: dict, result: IngestResult, **values) -> int:
    """Insert a finished ledger row for a file that loads no rows; its id."""
    row = {"rows_in_file": result.rows_in_file, "finished_at": now_text(), **base, **values}
    return conn.execute(_files.insert().returning(_files.c.id), row).scalar_one()


def _claim_file(conn: Connection, row: dict) -> int | None:
    """Insert the ``loaded`` ledger row, unless these bytes are loaded already (None)."""
    insert = sa.dialects.postgresql.insert if db.dialect_of(conn) == "postgresql" else sqlite.insert
    stmt = (
        insert(_files)
        .values(status="loaded")
        .on_conflict_do_nothing(index_elements=["sha256"], index_where=sa.text("status = 'loaded'"))
        .returning(_files.c.id)
    )
    return conn.execute(stmt, row).scalar()


def _duplicate_reason(earlier) -> str:
    return (
        f"same bytes as file_id={earlier.id} ({earlier.file_name}), "
        f"loaded at {format_ts(to_utc(earlier.finished_at))}"
    )


def record_duplicate(engine: Engine, base: dict, result: IngestResult, earlier) -> None:
    with db.transaction(engine) as conn:
        _insert_duplicate(conn, base, result, earlier)


def _insert_duplicate(conn: Connection, base: dict, result: IngestResult, earlier) -> None:
    reason = _duplicate_reason(earlier)
    result.file_id = _record_file(
        conn,
        base,
        result,
        file_format=result.file_format,
        status="duplicate",
        rows_rejected=0,
        error=reason,
        duplicate_of=earlier.id,
    )
    result.status, result.error, result.duplicate_of = "duplicate", reason, earlier.id


def record_quarantined(
    engine: Engine,
    base: dict,
    result: IngestResult,
    reason: str,
    *,
    file_format: str | None,
    rejected: pd.DataFrame | None = None,
) -> None:
    n_rejected = 0 if rejected is None else len(rejected)
    with db.transaction(engine) as conn:
        result.file_id = _record_file(
            conn,
            base,
            result,
            file_format=file_format,
            status="quarantined",
            rows_rejected=n_rejected,
            error=reason,
            duplicate_of=None,
        )
        if n_rejected:
            insert_rejected(conn, rejected, result.file_id)
    result.status, result.error, result.rows_rejected = "quarantined", reason, n_rejected


class _Conflict(LiquidityError):
    """A deadlock or serialization failure with a concurrent load: run the file again.

    Raised from inside the transaction body, so that :func:`db.transaction` rolls back and
    lets it through (it turns driver errors into one-line errors, which hides the SQLSTATE).
    """


def load_with_retry(engine, base, result, parsed, attempts: int = 5) -> None:
    """Load a parsed file in its one transaction, retried on a deadlock."""

    def store(conn: Connection, file_id: int):
        rows = parsed.rows
        if db.dialect_of(conn) == "postgresql":
            inserted = upsert_postgres(conn, rows, file_id)
        else:
            inserted = upsert_sqlite(conn, row_frame(rows), file_id)
        return inserted, len(rows), parsed.rejected, parsed.rows_in_file

    claim = (parsed.spec.name, parsed.rows_in_file, len(parsed.rejected))
    _retried(engine, result, attempts, lambda: _load(engine, base, result, claim, store))


def load_streamed_with_retry(engine, base, result, store, file_format, attempts: int = 5):
    """Load a file a piece at a time (:mod:`.stream`) in its one transaction, retried on a
    deadlock. ``store(conn, file_id)`` returns ``(inserted, good rows, rejected rows,
    rows in file)``; raising inside it rolls everything back."""
    claim = (file_format, 0, 0)
    _retried(engine, result, attempts, lambda: _load(engine, base, result, claim, store))


def _retried(engine, result, attempts: int, run) -> None:
    for attempt in range(1, attempts + 1):
        try:
            run()
            return
        except _Conflict as exc:
            if attempt == attempts:
                raise DatabaseError(
                    f"the database at {db.describe_url(str(engine.url))} kept reporting "
                    f"'{exc}' while loading {Path(result.path).name} ({attempts} attempts); "
                    "nothing from it was stored"
                ) from None
            log.warning("retrying %s after %s (attempt %d)", result.path, exc, attempt)
            time.sleep(0.2 * attempt)


@contextmanager
def _conflicts_retried():
    """Turn a deadlock / serialization failure into :class:`_Conflict`."""
    try:
        yield
    except db.driver_errors() as exc:
        inner = getattr(exc, "orig", None) or exc
        if db.classify_storage_error(inner) == "conflict":
            raise _Conflict(db.first_line(inner)) from exc
        raise


def _load(engine: Engine, base: dict, result: IngestResult, claim: tuple, store) -> None:
    """The one transaction of a file: claim the ledger row, rows, rejected rows."""
    file_format, rows_in_file, rows_rejected = claim
    with db.transaction(engine) as conn:
        file_id = _claim_file(
            conn,
            {
                **base,
                "file_format": file_format,
                "rows_in_file": rows_in_file,
                "rows_rejected": rows_rejected,
                "finished_at": base["started_at"],
            },
        )
        if file_id is None:  # another process loaded these bytes meanwhile
            earlier = conn.execute(_FIND_LOADED, {"sha256": base["sha256"]}).first()
            _insert_duplicate(conn, base, result, earlier)
            return
        with _conflicts_retried():
            inserted, n_good, rejected, rows_in_file = store(conn, file_id)
            if len(rejected):
                insert_rejected(conn, rejected, file_id)
        if inserted:  # coin identity: re-derive coin_aliases from the stored rows
            identity.recompute(conn)
        conn.execute(
            _files.update()
            .where(_files.c.id == file_id)
            .values(
                rows_in_file=rows_in_file,
                rows_loaded=inserted,
                rows_existing=n_good - inserted,
                rows_rejected=len(rejected),
                finished_at=now_text(),
            )
        )
    result.status, result.file_id = "loaded", file_id
    result.rows_in_file = rows_in_file
    result.rows_loaded, result.rows_existing = inserted, n_good - inserted
    result.rows_rejected = len(rejected)
