"""Database access: engines, transactions, storage errors, and the schema upgrade.

The tables are declared once in :mod:`liquidity_core.store.schema`, and ordinary statements
are built from them where they run. The schema is made and changed by Alembic revisions
(:mod:`.migrate`, ``store/migrations/``), run by :func:`upgrade`. SQL text lives in
``sql/queries/``: the bulk PostgreSQL statements (COPY, the staging table, ``SET LOCAL``)
that :mod:`.ingest.copy` loads by name with :func:`query`, and a few reports.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from liquidity_core.errors import DatabaseError, DatabaseUnavailable, LiquidityError

# The queries ship inside the package (package data), so an installed wheel finds them
# as well as a checkout does (where the top-level ``sql`` links here).
SQL_DIR = Path(str(importlib.resources.files("liquidity_core") / "sql"))


def describe_url(url: str) -> str:
    """Where a database URL points, without user or password (for messages)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite file {parsed.database or ':memory:'}"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def describe_backend(url: str) -> str:
    """The kind of database only (for public pages: no path, host or user)."""
    return f"the {make_url(url).get_backend_name()} database"


@lru_cache(maxsize=16)
def get_engine(url: str) -> Engine:
    """Return a shared engine for ``url``.

    SQLite files get WAL journaling, a busy timeout and foreign keys; their folder is
    created when missing.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below take over
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - trivial
            # Writers take the write lock at BEGIN so two of them queue instead of
            # deadlocking; read-only transactions (``transaction(readonly=True)``) do not,
            # so reads never wait for a writer under WAL.
            options = conn.get_execution_options()
            if options.get("liquidity_foreign_keys_off"):  # see upgrade(); back on at checkin
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.connection.info["foreign_keys_off"] = True
            readonly = options.get("liquidity_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        @sa.event.listens_for(engine, "checkin")
        def _sqlite_checkin(dbapi_conn, record):  # pragma: no cover - trivial
            if record.info.pop("foreign_keys_off", False) and dbapi_conn is not None:
                dbapi_conn.execute("PRAGMA foreign_keys=ON")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def get_probe_engine(url) -> Engine:
    """A shared engine for single-statement reads on the request path.

    On PostgreSQL it runs in autocommit with no ping per checkout, so a query costs one
    round trip instead of three (ping, query, commit): under load each round trip waits
    for the server process to be scheduled. A connection found dead fails that one query
    and is discarded (:class:`DatabaseUnavailable`); callers may retry once. Other
    databases get :func:`get_engine` itself. ``url`` is a string or a SQLAlchemy ``URL``
    (``engine.url``, which skips rendering the text on every request).
    """
    # By the object first: a URL hashes by its rendered text, which cost more than the
    # rest of the lookup on every request (the caller passes the same object each time).
    known = _probe_of.get(id(url))
    if known is not None and known[0] is url:
        return known[1]
    key = make_url(url)
    engine = _probe_engines.get(key)
    if engine is None:
        if key.get_backend_name() != "postgresql":
            return get_engine(key.render_as_string(hide_password=False))
        engine = sa.create_engine(key, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=8)
        engine = _probe_engines.setdefault(key, engine)
    if len(_probe_of) >= 64:
        _probe_of.clear()
    _probe_of[id(url)] = (url, engine)
    return engine


_probe_sql: dict = {}


def _compiled(statement, dialect) -> tuple[str, tuple | None]:
    """``statement`` as SQL text for ``dialect``, compiled once, and the order of its
    parameters when the driver takes them by position (None: by name)."""
    key = (dialect.name, statement)
    if key not in _probe_sql:
        compiled = statement.compile(dialect=dialect)
        order = tuple(compiled.positiontup) if compiled.positional else None
        _probe_sql[key] = (str(compiled), order)
    return _probe_sql[key]


def probe_row(url, statement, params: dict | None = None) -> tuple | None:
    """The first row of the Core ``statement`` (None when it returns none), read on the
    raw driver connection of :func:`get_probe_engine`: one round trip, and none of the
    CPU that SQLAlchemy's connection and transaction objects cost per call (more than
    the query's own on a one-row request). A pooled connection found dead is discarded
    and the read tried once more.

    ``params`` are the statement's bound parameters by name, as the driver takes them:
    no SQLAlchemy type conversion runs (pass times as the store keeps them).

    Raises
    ------
    DatabaseUnavailable, DatabaseError
        As :func:`transaction`, when the second try fails too.
    """
    engine = get_probe_engine(url)
    dbapi = engine.dialect.loaded_dbapi
    sql, order = _compiled(statement, engine.dialect)
    args = [] if params is None else [params if order is None else [params[k] for k in order]]
    for attempt in (1, 2):
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(sql, *args)
                row = cursor.fetchone()
                return None if row is None else tuple(row)
            finally:
                cursor.close()
        except dbapi.ProgrammingError as exc:
            if getattr(exc, "pgcode", None) == "42P01":  # undefined_table: no schema
                raise storage_error(engine, exc) from None
            raise
        except (dbapi.OperationalError, dbapi.InterfaceError) as exc:
            if "no such table" in str(exc):  # SQLite without the schema
                raise storage_error(engine, exc) from None
            raw.invalidate(exc)
            if attempt == 2:
                raise storage_error(engine, exc, invalidated=True) from None
        finally:
            raw.close()
    raise AssertionError("unreachable")


def dispose_probe_engine(url) -> None:
    """Close the probe engine of ``url`` (if any) and forget it; see :func:`get_probe_engine`."""
    engine = _probe_engines.pop(make_url(url), None)
    _probe_of.clear()
    if engine is not None:
        engine.dispose()


_probe_engines: dict = {}
#: id(url as given) -> (that url, its probe engine): see get_probe_engine.
_probe_of: dict = {}


def dialect_of(bind: Engine | Connection) -> str:
    """``"postgresql"`` or ``"sqlite"``."""
    return bind.dialect.name


def insert_once(bind: Engine | Connection, table: sa.Table):
    """``INSERT INTO table ... ON CONFLICT (primary key) DO NOTHING`` in ``bind``'s dialect:
    a row whose key is stored already is left as it is."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if dialect_of(bind) == "postgresql" else sqlite.insert
    key = [c.name for c in table.primary_key.columns]
    return insert(table).on_conflict_do_nothing(index_elements=key)


@contextmanager
def transaction(engine: Engine, *, readonly: bool = False) -> Iterator[Connection]:
    """Open a transaction: commit on success, roll back on any error.

    ``readonly=True`` marks a transaction that only reads: on SQLite it starts with a
    plain ``BEGIN`` instead of ``BEGIN IMMEDIATE`` (the write lock).

    Storage failures become project errors naming the host (never the password), whether
    SQLAlchemy wrapped them or a raw driver cursor (COPY, executemany) raised them, and
    also when the rollback itself fails on a dead connection:
    :class:`DatabaseUnavailable` when the server cannot be reached or the connection was
    lost, :class:`DatabaseError` for other operational failures (a full disk, say).
    Project errors and programming errors pass through unchanged.
    """
    dbapi = engine.dialect.loaded_dbapi
    if readonly:
        engine = engine.execution_options(liquidity_readonly=True)
    try:
        with engine.begin() as conn:
            yield conn
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise storage_error(engine, exc.orig, invalidated=exc.connection_invalidated) from None
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "pgcode", None) == "42P01":  # undefined_table
            raise storage_error(engine, exc.orig) from None
        raise
    except (dbapi.OperationalError, dbapi.InterfaceError) as exc:
        raise storage_error(engine, exc) from None


#: SQLSTATEs of a deadlock and a serialization failure: run the transaction again.
RETRY_SQLSTATES = ("40P01", "40001")
#: What the first line of a storage failure says (lower case), by kind.
_NO_ROOM = ("full", "no space", "could not extend")
_LOST = (
    "could not connect",
    "connection",  # refused, already closed, lost, terminated ...
    "could not translate host",
    "server closed",
    "unable to open database",
    "terminat",
    "ssl syscall error",
    "eof",
    "broken pipe",
    "does not exist",  # the database itself (a missing table is "no_schema")
)


def driver_errors() -> tuple:
    """Exception types of the database layer, including raw driver errors (COPY, executemany)."""
    import sqlite3

    errors: list = [sa.exc.DBAPIError, sqlite3.Error]
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        pass
    else:
        errors.append(psycopg2.Error)
    return tuple(errors)


def driver_error(exc: BaseException) -> BaseException:
    """The first driver error in ``exc``'s chain (what happened), else ``exc`` itself."""
    seen = exc
    while seen is not None:
        if not isinstance(seen, sa.exc.SQLAlchemyError):
            return seen
        seen = getattr(seen, "orig", None) or seen.__context__
    return exc


def first_line(exc: BaseException) -> str:
    """The first line of a driver error's message (its type name when it has none)."""
    lines = str(getattr(exc, "orig", exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def classify_storage_error(exc: BaseException, *, invalidated: bool = False) -> str:
    """What a driver-level failure means, the one place that reads its message.

    Returns
    -------
    str
        ``"no_schema"`` (a table is missing), ``"conflict"`` (deadlock or serialization
        failure: retry), ``"no_room"`` (the disk is full), ``"lost"`` (the server cannot be
        reached or the connection was lost; also when ``invalidated``) or ``"failed"``.
    """
    text = first_line(exc).lower()
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return "no_schema"
    if getattr(exc, "pgcode", None) in RETRY_SQLSTATES:
        return "conflict"
    if any(needle in text for needle in _NO_ROOM):
        return "no_room"
    if invalidated or any(needle in text for needle in _LOST):
        return "lost"
    return "failed"


def storage_error(engine: Engine, exc: BaseException, *, invalidated: bool = False):
    """The project error for a driver-level failure ``exc`` on ``engine``.

    :class:`DatabaseUnavailable` when the server cannot be reached or the connection was
    lost, :class:`DatabaseError` otherwise (no schema, a full disk, other failures). The
    message names the host, never the password.
    """
    detail = first_line(exc)
    where = describe_url(str(engine.url))
    kind = classify_storage_error(exc, invalidated=invalidated)
    if kind == "no_schema":
        return DatabaseError(
            f"the database at {where} has no schema ({detail}): run `liquidity db upgrade`"
        )
    if kind == "lost":
        return DatabaseUnavailable(f"cannot reach the database at {where}: {detail}")
    if kind == "no_room":
        return DatabaseError(f"the database at {where} has no room: {detail}")
    return DatabaseError(f"the database at {where} failed: {detail}")


@lru_cache(maxsize=128)
def _query_text(name: str) -> str:
    path = SQL_DIR / "queries" / f"{name}.sql"
    return path.read_text(encoding="utf-8")


def query(name: str, dialect: str | None = None) -> sa.TextClause:
    """Load ``sql/queries/<name>.sql`` as a bound-parameter text clause.

    A dialect-specific variant ``<name>.<dialect>.sql`` is used when it exists.
    """
    if dialect is not None and (SQL_DIR / "queries" / f"{name}.{dialect}.sql").exists():
        name = f"{name}.{dialect}"
    return sa.text(_query_text(name))


def upgrade(engine: Engine, *, until: str | None = None) -> list[str]:
    """Bring the schema to the newest revision (``alembic upgrade head``).

    One transaction: the whole upgrade commits or none of it does. On PostgreSQL an
    advisory lock makes concurrent upgrades wait for each other; on SQLite the write lock
    taken at ``BEGIN`` does, and foreign key checks are off for the transaction (a table
    copied in batch mode is dropped under the rows that reference it; its copy takes its
    name) and every reference is checked before the commit. A database made before Alembic
    (``schema_migrations``) is stamped at the last ``sql/`` file it applied first, see
    :mod:`.migrate`. ``until`` (a revision such as ``"002_models"``) stops there.

    Returns
    -------
    list of str
        The revisions applied by this call (empty when the schema was current).
    """
    from liquidity_core.store import migrate

    sqlite = dialect_of(engine) == "sqlite"
    if sqlite:  # a table copied in batch mode is dropped under the rows referencing it
        engine = engine.execution_options(liquidity_foreign_keys_off=True)
    with transaction(engine) as conn:
        if not sqlite:
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
        applied = migrate.upgrade(conn, until or "head")
        if sqlite and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").all()):
            raise DatabaseError(f"the upgrade would break references: {broken[:5]}")
    return applied


def current(engine: Engine) -> dict:
    """The revision the database is at and whether it is the newest (``db current``)."""
    from liquidity_core.store import migrate

    with transaction(engine, readonly=True) as conn:
        return migrate.current(conn)


def require_schema(engine: Engine) -> None:
    """Raise a clear error when ``liquidity db upgrade`` has not been run."""
    with transaction(engine) as conn:
        inspector = sa.inspect(conn)
        if not inspector.has_table("market_snapshots"):
            raise LiquidityError(
                f"the database at {describe_url(str(engine.url))} has no schema: "
                "run `liquidity db upgrade` first"
            )


def schema_url(base: str, schema: str) -> str:
    """PostgreSQL URL ``base`` with its ``search_path`` set to ``schema``."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
