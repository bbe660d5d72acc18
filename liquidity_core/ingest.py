"""Loading CSV drops into ``market_snapshots`` exactly once.

For each file:

1. its bytes are hashed; bytes already loaded are recorded as a ``duplicate`` that points
   at the file that loaded them, and load nothing;
2. the format is detected from the header and every row is checked
   (:mod:`liquidity_core.formats`); a file that cannot be read at all is ``quarantined``
   with a reason naming what was expected;
3. in ONE transaction: the ledger row (``ingest_files``), the good rows (PostgreSQL: COPY
   into a temporary staging table and one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``;
   SQLite: ``executemany`` of the same upsert) and the ``rejected_rows`` with their line
   numbers and reasons. A crash or kill leaves all of it or none of it.
4. optionally the file is moved to ``processed/`` or ``quarantine/`` beside it (never
   overwriting), a quarantined one with a ``<name>.reason.txt``.

The partial unique index on ``ingest_files (sha256) WHERE status = 'loaded'`` makes two
concurrent loads of the same bytes queue: the second waits for the first to commit, then
records a duplicate.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from . import db, identity
from .errors import DatabaseError, DatabaseUnavailable, InputError, LiquidityError
from .formats import FileRejected, ParsedFile, parse_csv
from .settings import Settings
from .snapshots import format_ts, to_utc

log = logging.getLogger(__name__)

#: Columns written to ``market_snapshots`` (``source_file_id`` is added by the statement).
ROW_COLUMNS = ("coin_id", "snapshot_ts", "coin_name", "symbol", "price", "change_1h",
               "change_24h", "change_7d", "volume_24h", "market_cap", "extras")
_RETRY_SQLSTATES = ("40P01", "40001")  # deadlock detected, serialization failure


@dataclass
class IngestResult:
    """The outcome for one file.

    Attributes
    ----------
    path : str
        The file as given.
    status : str
        ``loaded``, ``duplicate``, ``quarantined`` (all recorded in ``ingest_files``) or
        ``refused`` (not read: a symlink, outside the ingest folder, or unreadable).
    file_id : int or None
        The ``ingest_files`` row.
    rows_loaded, rows_existing, rows_rejected : int
        Rows newly stored, rows that were stored already, rows that failed a check.
    error : str or None
        Why the file was quarantined, refused or a duplicate.
    duplicate_of : int or None
        For a duplicate, the ``ingest_files`` row that loaded these bytes.
    moved_to : str or None
        Where the file was moved (``move=True``).
    warning : str or None
        A problem after the file was recorded (it could not be moved, or its reason note
        could not be written); the ledger is right either way.
    """

    path: str
    status: str
    file_id: int | None = None
    file_format: str | None = None
    sha256: str | None = None
    rows_in_file: int = 0
    rows_loaded: int = 0
    rows_existing: int = 0
    rows_rejected: int = 0
    error: str | None = None
    duplicate_of: int | None = None
    moved_to: str | None = None
    extra_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    warning: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the file loaded or was a duplicate."""
        return self.status in ("loaded", "duplicate")

    def summary_line(self) -> str:
        """One human line: status, file, rows loaded/rejected, reason."""
        head = f"{self.status:<11} {self.path}"
        if self.status == "loaded":
            text = (f"{head}: {self.rows_loaded} rows loaded, {self.rows_existing} already "
                    f"stored, {self.rows_rejected} rejected")
            if self.rows_rejected:
                text += f" (reasons in rejected_rows, file_id={self.file_id})"
        elif self.status == "duplicate":
            text = f"{head}: 0 rows loaded: {self.error}"
        else:
            text = f"{head}: {self.error}"
        if self.moved_to:
            text += f" -> {self.moved_to}"
        if self.warning:
            text += f" (warning: {self.warning})"
        return text

    def as_dict(self) -> dict:
        """A JSON-able dict of every attribute."""
        return asdict(self)


# --- public entry points ----------------------------------------------------------------


def ingest_paths(paths: Iterable, *, settings: Settings, move: bool = False) -> list[IngestResult]:
    """Ingest CSV files, or every ``*.csv`` directly inside the given folders.

    Parameters
    ----------
    paths : iterable of str or Path
        Files or folders.
    settings : Settings
        Database URL and ingest folder.
    move : bool, default=False
        Move each file afterwards to ``processed/`` or ``quarantine/`` beside it. Only
        files inside ``settings.ingest_dir`` may be moved; others are refused.

    Returns
    -------
    list of IngestResult
        One per file, in the order given (folders sorted by name).

    Raises
    ------
    InputError
        When a path does not exist (nothing is ingested then).
    DatabaseUnavailable
        When the database cannot be reached; files are left where they are.
    """
    files = _expand(paths)
    engine = db.get_engine(settings.database_url)
    if files:
        db.upgrade(engine)
    return [ingest_file(f, engine=engine, settings=settings, move=move) for f in files]


def ingest_one(path, settings: Settings) -> dict:
    """Ingest one file of the ingest folder and move it (the DAG's mapped task).

    Parameters
    ----------
    path : str or Path
        A file inside ``settings.ingest_dir``.
    settings : Settings

    Returns
    -------
    dict
        :meth:`IngestResult.as_dict`; ``rows_loaded`` tells whether rows were added.

    Raises
    ------
    DatabaseUnavailable
        When the database cannot be reached; the file stays where it is.
    """
    engine = db.get_engine(settings.database_url)
    db.upgrade(engine)
    result = ingest_file(Path(path), engine=engine, settings=settings, move=True)
    log.info("%s", result.summary_line())
    return result.as_dict()


def rows_added(results: Iterable) -> int:
    """Total ``rows_loaded`` over results (``IngestResult`` or dicts; ``None`` ignored)."""
    total = 0
    for r in results:
        if r is None:
            continue
        total += int(r["rows_loaded"] if isinstance(r, dict) else r.rows_loaded)
    return total


def list_ready_files(settings: Settings, *, now: float | None = None) -> list[str]:
    """The ``*.csv`` files in the ingest folder that are ready to load.

    Skips ``*.part`` / ``*.tmp`` (not ``*.csv``), hidden files, symlinks, sub-folders and
    files modified within the last ``settings.file_settle_seconds`` (probably still being
    written).

    Parameters
    ----------
    settings : Settings
    now : float, default=None
        Current time as a POSIX timestamp (tests); ``None`` means the clock.

    Returns
    -------
    list of str
        Absolute paths, sorted by name.
    """
    folder = Path(settings.ingest_dir)
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    ready = []
    for entry in sorted(folder.iterdir()):
        if (entry.suffix.lower() != ".csv" or entry.name.startswith(".")
                or entry.is_symlink() or not entry.is_file()):
            if entry.is_symlink():
                log.warning("skipping symlink %s: copy the file into the folder instead", entry)
            continue
        try:
            modified = entry.stat().st_mtime
        except FileNotFoundError:  # taken by a concurrent run meanwhile
            continue
        if now - modified < settings.file_settle_seconds:
            continue
        ready.append(str(entry))
    return ready


# --- one file ------------------------------------------------------------------------------


def ingest_file(path: Path, *, engine: Engine, settings: Settings, move: bool = False
                ) -> IngestResult:
    """Ingest one file (see the module docstring); the schema must exist.

    Parameters
    ----------
    path : Path
    engine : sqlalchemy.engine.Engine
    settings : Settings
    move : bool, default=False

    Returns
    -------
    IngestResult
    """
    t0 = time.perf_counter()
    path = Path(path)
    refusal = _refusal(path, settings, move)
    if refusal is None:
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:  # taken or removed meanwhile
            refusal = f"cannot read the file: {exc.strerror or exc}"
        except OSError as exc:
            refusal = f"cannot read the file: {exc.strerror or exc}"
            if move:
                # Quarantined with the reason, so the DAG does not retry it every run.
                # With no bytes there is no sha256, so the ledger has no row for it.
                result = IngestResult(path=str(path), status="quarantined", error=refusal)
                _move_after(path, result)
                return result
    if refusal is not None:
        return IngestResult(path=str(path), status="refused", error=refusal)

    sha = hashlib.sha256(data).hexdigest()
    started = _now()
    base = {"sha256": sha, "file_name": path.name, "started_at": started}
    result = IngestResult(path=str(path), status="", sha256=sha)

    try:
        _ingest_bytes(engine, data, base, result)
    except _db_errors() as exc:
        mapped = _storage_error(exc, engine, path)
        if mapped is None:
            raise
        raise mapped from None
    if move:
        _move_after(path, result)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _ingest_bytes(engine: Engine, data: bytes, base: dict, result: IngestResult) -> None:
    earlier = _find_loaded(engine, base["sha256"])
    if earlier is not None:
        _record_duplicate(engine, base, result, earlier)
        return
    try:
        parsed = parse_csv(data)
    except FileRejected as exc:
        _record_quarantined(engine, base, result, str(exc), file_format=None)
        return
    result.file_format = parsed.spec.name
    result.rows_in_file = parsed.rows_in_file
    result.extra_columns = parsed.extra_columns
    result.ignored_columns = parsed.ignored_columns
    if len(parsed.rows) == 0:
        first = parsed.rejected.iloc[0]
        reason = (f"no valid rows: all {parsed.rows_in_file} rows failed checks "
                  f"(first: line {int(first['line'])}: {first['reason']})")
        _record_quarantined(engine, base, result, reason, file_format=parsed.spec.name,
                            rejected=parsed.rejected)
    else:
        _load_with_retry(engine, base, result, parsed)


def _db_errors() -> tuple:
    """Exception types of the database layer, including raw driver errors (COPY, executemany)."""
    errors: list = [sa.exc.DBAPIError, sqlite3.Error]
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        pass
    else:
        errors.append(psycopg2.Error)
    return tuple(errors)


def _storage_error(exc: BaseException, engine: Engine, path: Path) -> LiquidityError | None:
    """A one-line project error for a database failure in the middle of a load.

    Raw driver errors (from COPY or executemany) and a rollback on a dead connection do
    not pass through :func:`db.transaction`'s mapping, so they are named here. The
    transaction was rolled back: nothing of the file is stored.
    """
    inner = exc
    seen = exc
    while seen is not None:  # the first driver error in the chain says what happened
        if not isinstance(seen, sa.exc.SQLAlchemyError):
            inner = seen
            break
        seen = getattr(seen, "orig", None) or seen.__context__
    text = (str(getattr(inner, "orig", inner)).strip().splitlines() or [type(inner).__name__])[0]
    where = db.describe_url(str(engine.url))
    low = text.lower()
    if "full" in low or "no space" in low or "could not extend" in low:
        return DatabaseUnavailable(
            f"the database at {where} has no room: {text}; nothing from {path.name} was stored"
        )
    if getattr(inner, "pgcode", None) in _RETRY_SQLSTATES:
        return None
    operational = isinstance(exc, (sa.exc.InterfaceError, sa.exc.OperationalError)) or (
        type(inner).__name__ in ("OperationalError", "InterfaceError"))
    if not operational:
        return None
    lost = any(k in low for k in ("connection", "server closed", "terminat", "eof", "broken pipe"))
    what = "lost the database" if lost else "the database failed"
    return DatabaseUnavailable(
        f"{what} at {where} while loading {path.name}: {text}; nothing from it was stored"
    )


def _refusal(path: Path, settings: Settings, move: bool) -> str | None:
    if path.is_symlink():
        return "is a symbolic link; refusing to follow it (copy the file instead)"
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "is not a regular file"
    if move:
        folder = Path(settings.ingest_dir).resolve()
        real = path.resolve()
        if real.parent != folder and folder not in real.parents:
            return (f"is outside the ingest folder {folder}; only files inside it are moved "
                    "(ingest without --move, or copy it there)")
    return None


def _expand(paths: Iterable) -> list[Path]:
    files: list[Path] = []
    missing = []
    for p in paths:
        p = Path(p)
        if p.is_dir() and not p.is_symlink():
            files.extend(sorted(c for c in p.iterdir()
                                if c.suffix.lower() == ".csv" and (c.is_file() or c.is_symlink())))
        elif p.exists() or p.is_symlink():
            files.append(p)
        else:
            missing.append(str(p))
    if missing:
        raise InputError(f"no such file or folder: {', '.join(missing)}")
    return files


# --- database --------------------------------------------------------------------------------


def _now() -> str:
    return format_ts(pd.Timestamp(datetime.now(UTC)))


def _find_loaded(engine: Engine, sha: str):
    with db.transaction(engine) as conn:
        return conn.execute(db.query("ingest_find_loaded"), {"sha256": sha}).first()


def _duplicate_reason(earlier) -> str:
    return (f"same bytes as file_id={earlier.id} ({earlier.file_name}), "
            f"loaded at {format_ts(to_utc(earlier.finished_at))}")


def _record_duplicate(engine: Engine, base: dict, result: IngestResult, earlier) -> None:
    with db.transaction(engine) as conn:
        _insert_duplicate(conn, base, result, earlier)


def _insert_duplicate(conn: Connection, base: dict, result: IngestResult, earlier) -> None:
    reason = _duplicate_reason(earlier)
    result.file_id = conn.execute(db.query("ingest_record_file"), {
        **base, "file_format": result.file_format, "status": "duplicate",
        "rows_in_file": result.rows_in_file, "rows_rejected": 0, "error": reason,
        "duplicate_of": earlier.id, "finished_at": _now(),
    }).scalar_one()
    result.status, result.error, result.duplicate_of = "duplicate", reason, earlier.id


def _record_quarantined(engine: Engine, base: dict, result: IngestResult, reason: str, *,
                        file_format: str | None, rejected: pd.DataFrame | None = None) -> None:
    n_rejected = 0 if rejected is None else len(rejected)
    with db.transaction(engine) as conn:
        result.file_id = conn.execute(db.query("ingest_record_file"), {
            **base, "file_format": file_format, "status": "quarantined",
            "rows_in_file": result.rows_in_file, "rows_rejected": n_rejected, "error": reason,
            "duplicate_of": None, "finished_at": _now(),
        }).scalar_one()
        if n_rejected:
            _insert_rejected(conn, rejected, result.file_id)
    result.status, result.error, result.rows_rejected = "quarantined", reason, n_rejected


class _Conflict(LiquidityError):
    """A deadlock or serialization failure with a concurrent load: run the file again.

    Raised from inside the transaction body, so that :func:`db.transaction` rolls back and
    lets it through (it turns driver errors into one-line errors, which hides the SQLSTATE).
    """


def _load_with_retry(engine, base, result, parsed, attempts: int = 5) -> None:
    for attempt in range(1, attempts + 1):
        try:
            _load(engine, base, result, parsed)
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
    except _db_errors() as exc:
        inner = getattr(exc, "orig", None) or exc
        if getattr(inner, "pgcode", None) in _RETRY_SQLSTATES:
            text = (str(inner).strip().splitlines() or ["conflict"])[0]
            raise _Conflict(text) from exc
        raise


def _load(engine: Engine, base: dict, result: IngestResult, parsed: ParsedFile) -> None:
    """The one transaction of a file: claim the ledger row, rows, rejected rows."""
    dialect = db.dialect_of(engine)
    with db.transaction(engine) as conn:
        file_id = conn.execute(db.query("ingest_claim_file"), {
            **base, "file_format": parsed.spec.name, "rows_in_file": parsed.rows_in_file,
            "rows_rejected": len(parsed.rejected), "finished_at": base["started_at"],
        }).scalar()
        if file_id is None:  # another process loaded these bytes meanwhile
            earlier = conn.execute(db.query("ingest_find_loaded"),
                                   {"sha256": base["sha256"]}).first()
            _insert_duplicate(conn, base, result, earlier)
            return
        rows = parsed.rows
        with _conflicts_retried():
            if dialect == "postgresql":
                inserted = _upsert_postgres(conn, rows, file_id)
            else:
                inserted = _upsert_sqlite(conn, _row_frame(rows), file_id)
            if len(parsed.rejected):
                _insert_rejected(conn, parsed.rejected, file_id)
        if inserted:  # coin identity (#13): re-derive coin_aliases from the stored rows
            identity.recompute(conn)
        conn.execute(db.query("ingest_finish_file"), {
            "id": file_id, "rows_loaded": inserted, "rows_existing": len(rows) - inserted,
            "rows_rejected": len(parsed.rejected), "finished_at": _now(),
        })
    result.status, result.file_id = "loaded", file_id
    result.rows_loaded, result.rows_existing = inserted, len(rows) - inserted
    result.rows_rejected = len(parsed.rejected)


def _row_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The good rows in storage form: UTC text times and extras as JSON text."""
    codes, uniques = pd.factorize(rows["snapshot_ts"])
    stamps = np.array([format_ts(u) for u in uniques], dtype=object)
    out = pd.DataFrame({
        "coin_id": rows["coin_id"].astype(object),
        "snapshot_ts": stamps[codes],
        "coin_name": rows["coin_name"].astype(object),
        "symbol": rows["symbol"].astype(object),
    })
    for col in ("price", "change_1h", "change_24h", "change_7d", "volume_24h", "market_cap"):
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
        quoted = np.array(['"' + str(u).replace('"', '""') + '"' for u in uniques] + ["nan"],
                          dtype=object)
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
            _csv_for_copy(frame.iloc[i:i + chunk_rows]).encode("utf-8")
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
    (which :func:`_storage_error` turns into one line). The CLI promises one line.
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


def _upsert_postgres(conn: Connection, rows: pd.DataFrame, file_id: int) -> int:
    """COPY the good rows (canonical frame) in; returns how many were new.

    Fast path: when nothing is stored in the file's time range (new snapshots, the common
    case), binary COPY straight into ``market_snapshots`` inside a savepoint. Otherwise,
    or when a concurrent load stored some of the same keys meanwhile (unique violation),
    COPY into a staging table and upsert with ``ON CONFLICT DO NOTHING``.
    """
    conn.exec_driver_sql(db.query("ingest_stage_settings", "postgresql").text)
    span = {"lo": format_ts(rows["snapshot_ts"].min()), "hi": format_ts(rows["snapshot_ts"].max())}
    if not conn.execute(db.query("ingest_any_stored_between"), span).scalar():
        savepoint = conn.begin_nested()
        try:
            _copy_binary(conn, db.query("ingest_copy_direct", "postgresql").text, rows,
                         file_id=file_id)
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
    inserted = conn.execute(db.query("ingest_stage_upsert", "postgresql"),
                            {"file_id": file_id}).rowcount
    conn.exec_driver_sql("DROP TABLE ingest_stage")
    return int(inserted)


# --- PostgreSQL binary COPY ------------------------------------------------------------------
#
# Each row is: int16 field count, then per field int32 length (-1 = NULL) and the bytes:
# float8 and int8 big-endian, timestamptz as int64 microseconds since 2000-01-01 UTC, text
# as UTF-8. Rows are assembled for a chunk at a time with numpy (no per-row Python), from
# per-column byte pools: one 12-byte cell per number, one cell per DISTINCT text value.

#: Column order of the binary COPY statements (sql/queries/ingest_*copy*.postgresql.sql).
BINARY_COLUMNS = ("price", "change_1h", "change_24h", "change_7d", "volume_24h", "market_cap",
                  "snapshot_ts", "source_file_id", "coin_id", "coin_name", "symbol", "extras")
_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_PG_TRAILER = b"\xff\xff"
_NULL_CELL = np.frombuffer(b"\xff\xff\xff\xff", dtype=np.uint8)
_LEN8 = np.frombuffer(b"\x00\x00\x00\x08", dtype=np.uint8)
_PG_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")


def _binary_columns(rows: pd.DataFrame, file_id: int | None) -> list[tuple[str, np.ndarray]]:
    micros = ((rows["snapshot_ts"].dt.as_unit("us") - _PG_EPOCH)
              // pd.Timedelta(microseconds=1)).to_numpy(dtype=np.int64)
    columns: list[tuple[str, np.ndarray]] = [
        ("f8", rows[c].to_numpy(dtype=float)) for c in BINARY_COLUMNS[:6]
    ]
    columns.append(("i8", micros))
    if file_id is not None:
        columns.append(("i8", np.full(len(rows), file_id, dtype=np.int64)))
    for c in ("coin_id", "coin_name", "symbol"):
        columns.append(("text", rows[c].to_numpy(dtype=object)))
    columns.append(("text", _extras_json(rows)))
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
        columns = [(kind, _cells(kind, values) if kind == "text" else values)
                   for kind, values in _binary_columns(rows, file_id)]
        n = len(rows)

        def chunks():
            yield _PG_HEADER
            for lo in range(0, n, chunk_rows):
                yield _encode_binary_rows(columns, lo, min(n, lo + chunk_rows))
            yield _PG_TRAILER

        super().__init__(chunks())



def _copy_binary(conn: Connection, sql: str, rows: pd.DataFrame, *,
                 file_id: int | None = None) -> None:
    _copy_stream(conn, sql, _BinaryStream(rows, file_id=file_id))


def _unique_violation() -> type[BaseException]:
    from psycopg2.errors import UniqueViolation

    return UniqueViolation


def _upsert_sqlite(conn: Connection, rows: pd.DataFrame, file_id: int, *,
                   chunk_rows: int = 50_000) -> int:
    """``executemany`` of the upsert, 50k rows at a time (bounded memory); rows inserted."""
    sql = db.query("ingest_upsert_rows").text
    names = [*rows.columns, "source_file_id"]
    inserted = 0
    cursor = conn.connection.driver_connection.cursor()
    try:
        for lo in range(0, len(rows), chunk_rows):
            chunk = rows.iloc[lo:lo + chunk_rows]
            columns = [chunk[c].astype(object).where(chunk[c].notna(), None).tolist()
                       for c in rows.columns]
            columns.append([file_id] * len(chunk))
            # map/zip/dict are C builtins: no Python bytecode runs per row.
            rows_iter = zip(*columns, strict=True)
            cursor.executemany(sql, map(dict, map(zip, repeat(names), rows_iter)))
            inserted += cursor.rowcount
        return inserted
    finally:
        cursor.close()


def _insert_rejected(conn: Connection, rejected: pd.DataFrame, file_id: int) -> None:
    frame = pd.DataFrame({
        "file_id": file_id,
        "line_number": rejected["line"].to_numpy(dtype=np.int64),
        "reason": rejected["reason"].astype(object),
        "raw_line": rejected["raw_line"].astype(object),
    })
    if db.dialect_of(conn) == "postgresql":
        _copy(conn, db.query("ingest_copy_rejected", "postgresql").text, frame)
    else:
        conn.execute(db.query("ingest_insert_rejected"), frame.to_dict("records"))


# --- moving files ----------------------------------------------------------------------------


def _move_after(path: Path, result: IngestResult) -> None:
    if result.status not in ("loaded", "duplicate", "quarantined"):
        return
    folder = path.parent / ("quarantine" if result.status == "quarantined" else "processed")
    try:
        target = _move_no_clobber(path, folder)
    except FileNotFoundError:
        log.info("%s was already moved (by a concurrent run)", path)
        return
    except OSError as exc:  # e.g. no room for the folder: the file stays, the ledger is right
        result.warning = f"could not move the file to {folder}: {exc.strerror or exc}"
        log.warning("%s: %s", path, result.warning)
        return
    result.moved_to = str(target)
    if result.status == "quarantined":
        note = f"{result.error}\n\nfile: {path.name}\n"
        if result.sha256 is not None:
            note += f"sha256: {result.sha256}\ningest_files.id: {result.file_id}\n"
        try:
            _write_no_clobber(target.with_name(target.name + ".reason.txt"), note)
        except OSError as exc:
            result.warning = (f"could not write the reason note ({exc.strerror or exc}); "
                              f"the reason is in ingest_files.id={result.file_id}")
            log.warning("%s: %s", path, result.warning)


def _candidates(folder: Path, name: str):
    yield folder / name
    stem, suffix = os.path.splitext(name)
    for k in range(1, 10_000):
        yield folder / f"{stem}.{k}{suffix}"


def _move_no_clobber(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` under a name that does not exist there yet.

    ``folder`` must be a real folder beside the file: a symlink (which could lead out of
    the ingest folder) is refused.
    """
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise NotADirectoryError(0, f"{folder.name}/ is a symbolic link or not a folder; "
                                    "refusing to move files through it")
    folder.mkdir(exist_ok=True)
    for target in _candidates(folder, path.name):
        try:
            os.link(path, target)  # fails if target exists: never overwrites
        except FileExistsError:
            continue
        except FileNotFoundError:
            raise
        except OSError:  # no hard links here: fall back to a checked rename
            if target.exists():
                continue
            os.rename(path, target)
            return target
        try:
            os.unlink(path)
        except OSError:
            os.unlink(target)  # never leave the file in two places
            raise
        return target
    raise InputError(f"cannot find a free name for {path.name} in {folder}")


def _write_no_clobber(path: Path, text: str) -> Path:
    for target in _candidates(path.parent, path.name):
        try:
            fh = open(target, "x", encoding="utf-8")  # noqa: SIM115 - closed below
        except FileExistsError:
            continue
        try:
            with fh:
                fh.write(text)
        except OSError:
            target.unlink(missing_ok=True)  # never leave an empty or partial note
            raise
        return target
    raise InputError(f"cannot find a free name for {path.name} in {path.parent}")
