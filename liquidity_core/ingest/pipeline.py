"""Loading CSV drops into ``market_snapshots`` exactly once.

For each file:

1. its bytes are hashed; bytes already loaded are recorded as a ``duplicate`` that points
   at the file that loaded them, and load nothing;
2. the format is detected from the header and every row is checked (:mod:`.reader`,
   :mod:`.checks`); a file that cannot be read at all is ``quarantined`` with a reason
   naming what was expected;
3. in ONE transaction (:mod:`.ledger`): the ledger row (``ingest_files``), the good rows
   (:mod:`.copy`; PostgreSQL: COPY into a temporary staging table and one
   ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``; SQLite: ``executemany`` of the same
   upsert) and the ``rejected_rows`` with their line numbers and reasons. A crash or kill
   leaves all of it or none of it.
4. optionally the file is moved to ``processed/`` or ``quarantine/`` beside it (never
   overwriting, :mod:`.files`), a quarantined one with a ``<name>.reason.txt``.

This module holds the entry points (:func:`ingest_paths`, :func:`ingest_file`, ...) and
the steps of one file; a storage failure becomes one line through
:func:`liquidity_core.store.db.classify_storage_error`.

The partial unique index on ``ingest_files (sha256) WHERE status = 'loaded'`` makes two
concurrent loads of the same bytes queue: the second waits for the first to commit, then
records a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from liquidity_core import progress
from liquidity_core.errors import InputError, LiquidityError
from liquidity_core.ingest.files import move_after
from liquidity_core.ingest.ledger import (
    find_loaded,
    load_streamed_with_retry,
    load_with_retry,
    now_text,
    record_duplicate,
    record_quarantined,
)
from liquidity_core.ingest.result import IngestResult
from liquidity_core.ingest.stream import NotStreamable, copy_file, first_piece, wants_pieces
from liquidity_core.inputs.formats import FileRejected
from liquidity_core.inputs.reader import parse_csv
from liquidity_core.settings import Settings
from liquidity_core.store import db

log = logging.getLogger("liquidity_core.ingest")


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
            sha, size = _sha256_of(path)
        except FileNotFoundError as exc:  # taken or removed meanwhile
            refusal = f"cannot read the file: {exc.strerror or exc}"
        except OSError as exc:
            refusal = f"cannot read the file: {exc.strerror or exc}"
            if move:
                # Quarantined with the reason, so the DAG does not retry it every run.
                # With no bytes there is no sha256, so the ledger has no row for it.
                result = IngestResult(path=str(path), status="quarantined", error=refusal)
                move_after(path, result)
                return result
    if refusal is not None:
        return IngestResult(path=str(path), status="refused", error=refusal)

    started = now_text()
    base = {"sha256": sha, "file_name": path.name, "started_at": started}
    result = IngestResult(path=str(path), status="", sha256=sha)

    try:
        with progress.task(path.name, total=size):
            _ingest_path(engine, path, size, base, result)
    except db.driver_errors() as exc:
        mapped = _storage_error(exc, engine, path)
        if mapped is None:
            raise
        raise mapped from None
    if move:
        move_after(path, result)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _sha256_of(path: Path) -> tuple[str, int]:
    """The file's sha256 and size, read 1 MiB at a time."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _ingest_path(engine: Engine, path: Path, size: int, base: dict, result: IngestResult):
    earlier = find_loaded(engine, base["sha256"])
    if earlier is not None:
        record_duplicate(engine, base, result, earlier)
        return
    if wants_pieces(size) and db.dialect_of(engine) == "postgresql":
        try:
            _ingest_streamed(engine, path, base, result)
            return
        except NotStreamable as exc:
            log.info("reading %s whole: %s", path.name, exc)
    _ingest_bytes(engine, path.read_bytes(), base, result)


def _ingest_streamed(engine: Engine, path: Path, base: dict, result: IngestResult) -> None:
    """A big file, a piece at a time (:mod:`.stream`), in its one transaction."""
    try:
        first = first_piece(path)
    except FileRejected as exc:
        record_quarantined(engine, base, result, str(exc), file_format=None)
        return
    spec = first.spec
    result.file_format = spec.name
    seen: dict = {}

    def store(conn, file_id):
        inserted, totals = copy_file(conn, path, file_id, first)
        seen["totals"] = totals
        if totals.good == 0:
            raise _NoValidRows()
        return inserted, totals.good, totals.rejected_frame(), totals.rows_in_file

    try:
        load_streamed_with_retry(engine, base, result, store, spec.name)
    except FileRejected as exc:
        record_quarantined(engine, base, result, str(exc), file_format=spec.name)
        return
    except _NoValidRows:
        totals = seen["totals"]
        result.rows_in_file = totals.rows_in_file
        _quarantine_all_rejected(engine, base, result, spec, totals.rejected_frame())
        return
    totals = seen["totals"]
    result.extra_columns = totals.extra_columns
    result.ignored_columns = totals.ignored_columns


class _NoValidRows(Exception):
    """Every row of a streamed file failed its checks: roll back, then quarantine it."""


def _quarantine_all_rejected(engine, base, result, spec, rejected) -> None:
    first = rejected.iloc[0]
    reason = (
        f"no valid rows: all {result.rows_in_file} rows failed checks "
        f"(first: line {int(first['line'])}: {first['reason']})"
    )
    record_quarantined(engine, base, result, reason, file_format=spec.name, rejected=rejected)


def _ingest_bytes(engine: Engine, data: bytes, base: dict, result: IngestResult) -> None:
    try:
        parsed = parse_csv(data)
    except FileRejected as exc:
        record_quarantined(engine, base, result, str(exc), file_format=None)
        return
    progress.update(done=len(data), rows=parsed.rows_in_file)
    result.file_format = parsed.spec.name
    result.rows_in_file = parsed.rows_in_file
    result.extra_columns = parsed.extra_columns
    result.ignored_columns = parsed.ignored_columns
    if len(parsed.rows) == 0:
        _quarantine_all_rejected(engine, base, result, parsed.spec, parsed.rejected)
    else:
        load_with_retry(engine, base, result, parsed)


def _storage_error(exc: BaseException, engine: Engine, path: Path) -> LiquidityError | None:
    """A one-line project error for a database failure in the middle of a load.

    Raw driver errors (from COPY or executemany) and a rollback on a dead connection do
    not pass through :func:`db.transaction`'s mapping, so they are named here, through the
    same classifier (:func:`db.classify_storage_error`). The transaction was rolled back:
    nothing of the file is stored. None for what is not a storage failure (re-raised).
    """
    inner = db.driver_error(exc)
    kind = db.classify_storage_error(inner)
    operational = isinstance(exc, (sa.exc.InterfaceError, sa.exc.OperationalError)) or (
        type(inner).__name__ in ("OperationalError", "InterfaceError")
    )
    if kind == "conflict" or (kind != "no_room" and not operational):
        return None
    error = db.storage_error(engine, inner)
    return type(error)(f"{error} while loading {path.name}; nothing from it was stored")


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
