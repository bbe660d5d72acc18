"""Loading CSV drops into ``market_snapshots`` exactly once.

For each file:

1. its bytes are hashed; bytes already loaded are recorded as a ``duplicate`` that points
   at the file that loaded them, and load nothing;
2. the format is detected from the header and every row is checked
   (:mod:`liquidity_core.ingest.formats`); a file that cannot be read at all is ``quarantined``
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
import logging
import sqlite3
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .. import db, identity
from ..errors import DatabaseError, DatabaseUnavailable, InputError, LiquidityError
from ..model.snapshots import format_ts, to_utc
from ..settings import Settings
from .copy import _insert_rejected, _row_frame, _upsert_postgres, _upsert_sqlite
from .files import _move_after
from .formats import FileRejected
from .reader import ParsedFile, parse_csv

log = logging.getLogger("liquidity_core.ingest")

#: Columns written to ``market_snapshots`` (``source_file_id`` is added by the statement).
ROW_COLUMNS = (
    "coin_id",
    "snapshot_ts",
    "coin_name",
    "symbol",
    "price",
    "change_1h",
    "change_24h",
    "change_7d",
    "volume_24h",
    "market_cap",
    "extras",
)
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
            text = (
                f"{head}: {self.rows_loaded} rows loaded, {self.rows_existing} already "
                f"stored, {self.rows_rejected} rejected"
            )
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
        if (
            entry.suffix.lower() != ".csv"
            or entry.name.startswith(".")
            or entry.is_symlink()
            or not entry.is_file()
        ):
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


def ingest_file(
    path: Path, *, engine: Engine, settings: Settings, move: bool = False
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
        reason = (
            f"no valid rows: all {parsed.rows_in_file} rows failed checks "
            f"(first: line {int(first['line'])}: {first['reason']})"
        )
        _record_quarantined(
            engine, base, result, reason, file_format=parsed.spec.name, rejected=parsed.rejected
        )
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
        type(inner).__name__ in ("OperationalError", "InterfaceError")
    )
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
            return (
                f"is outside the ingest folder {folder}; only files inside it are moved "
                "(ingest without --move, or copy it there)"
            )
    return None


def _expand(paths: Iterable) -> list[Path]:
    files: list[Path] = []
    missing = []
    for p in paths:
        p = Path(p)
        if p.is_dir() and not p.is_symlink():
            files.extend(
                sorted(
                    c
                    for c in p.iterdir()
                    if c.suffix.lower() == ".csv" and (c.is_file() or c.is_symlink())
                )
            )
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
    return (
        f"same bytes as file_id={earlier.id} ({earlier.file_name}), "
        f"loaded at {format_ts(to_utc(earlier.finished_at))}"
    )


def _record_duplicate(engine: Engine, base: dict, result: IngestResult, earlier) -> None:
    with db.transaction(engine) as conn:
        _insert_duplicate(conn, base, result, earlier)


def _insert_duplicate(conn: Connection, base: dict, result: IngestResult, earlier) -> None:
    reason = _duplicate_reason(earlier)
    result.file_id = conn.execute(
        db.query("ingest_record_file"),
        {
            **base,
            "file_format": result.file_format,
            "status": "duplicate",
            "rows_in_file": result.rows_in_file,
            "rows_rejected": 0,
            "error": reason,
            "duplicate_of": earlier.id,
            "finished_at": _now(),
        },
    ).scalar_one()
    result.status, result.error, result.duplicate_of = "duplicate", reason, earlier.id


def _record_quarantined(
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
        result.file_id = conn.execute(
            db.query("ingest_record_file"),
            {
                **base,
                "file_format": file_format,
                "status": "quarantined",
                "rows_in_file": result.rows_in_file,
                "rows_rejected": n_rejected,
                "error": reason,
                "duplicate_of": None,
                "finished_at": _now(),
            },
        ).scalar_one()
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
        file_id = conn.execute(
            db.query("ingest_claim_file"),
            {
                **base,
                "file_format": parsed.spec.name,
                "rows_in_file": parsed.rows_in_file,
                "rows_rejected": len(parsed.rejected),
                "finished_at": base["started_at"],
            },
        ).scalar()
        if file_id is None:  # another process loaded these bytes meanwhile
            earlier = conn.execute(
                db.query("ingest_find_loaded"), {"sha256": base["sha256"]}
            ).first()
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
        conn.execute(
            db.query("ingest_finish_file"),
            {
                "id": file_id,
                "rows_loaded": inserted,
                "rows_existing": len(rows) - inserted,
                "rows_rejected": len(parsed.rejected),
                "finished_at": _now(),
            },
        )
    result.status, result.file_id = "loaded", file_id
    result.rows_loaded, result.rows_existing = inserted, len(rows) - inserted
    result.rows_rejected = len(parsed.rejected)
