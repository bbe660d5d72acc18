"""Schema migrations with Alembic, configured in code (no ``alembic.ini``).

The environment and the revisions ship inside the package (``store/migrations/``:
``env.py`` and ``versions/``). Our revisions are recorded in :data:`VERSION_TABLE`, not in
Alembic's default ``alembic_version``, so a database shared with Airflow (whose own tables
use their own version table) keeps both histories apart.

A database made before Alembic, by the numbered ``sql/NNN_*.sql`` runner, records the
files it applied in ``schema_migrations``; the first revisions carry those names
(``001_ingest`` ... ``007_forecasts``) and reproduce those files, so such a database is
stamped at the last file it applied and upgraded through the rest, its rows untouched.

:func:`liquidity_core.store.db.upgrade` opens the transaction and calls :func:`upgrade`.
"""

from __future__ import annotations

import importlib.resources
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from liquidity_core.errors import LiquidityError

#: Where our revisions are recorded (Airflow's tables use ``alembic_version``).
VERSION_TABLE = "liquidity_alembic_version"
#: The table of applied ``sql/NNN_*.sql`` files that the runner before Alembic kept.
LEGACY_TABLE = "schema_migrations"
MIGRATIONS_DIR = str(importlib.resources.files("liquidity_core.store") / "migrations")
#: The newest revision, named here so that :func:`upgrade` knows an up-to-date database
#: without loading Alembic, which costs a third of a second (it loads every dialect);
#: each ingest upgrades first. A test checks that it is the head of ``versions/``.
HEAD = "009_text_keys"


def _sqlite_server_default(context, inspected, declared, *_defaults) -> bool | None:
    """SQLite has no identity columns (``INTEGER PRIMARY KEY AUTOINCREMENT`` aliases the
    rowid), so a declared :class:`~sqlalchemy.Identity` is no difference there; anything
    else is compared as Alembic does (None)."""
    if isinstance(declared.server_default, sa.Identity):
        return False
    return None


def compare_options(dialect: str) -> dict:
    """How Alembic compares :data:`~liquidity_core.store.schema.metadata` with a database
    of ``dialect``: types and server defaults too."""
    server_default = _sqlite_server_default if dialect == "sqlite" else True
    return {
        "version_table": VERSION_TABLE,
        "compare_type": True,
        "compare_server_default": server_default,
    }


def config(connection: Connection | None = None, applied: list | None = None):
    """An Alembic ``Config`` for the packaged environment, on ``connection``.

    ``env.py`` runs the revisions on ``connection`` (in its transaction) and appends the
    id of each revision it applies to ``applied``.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    cfg.attributes["applied"] = applied if applied is not None else []
    return cfg


@lru_cache(maxsize=1)
def scripts():
    """The revisions (an Alembic ``ScriptDirectory``), read once."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision."""
    return scripts().get_current_head()


def _stored_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _recorded(conn: Connection) -> str | None:
    """The revision our version table records, read without Alembic (None: no table)."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(
        sa.select(sa.column("version_num")).select_from(sa.table(VERSION_TABLE))
    ).scalar()


def legacy_revision(conn: Connection) -> str | None:
    """The revision a database made before Alembic is at: the last ``sql/`` file its
    ``schema_migrations`` records. None when Alembic records it, or it has no such table.

    Raises
    ------
    LiquidityError
        When the recorded file is none of the revisions (a newer program made it).
    """
    inspector = sa.inspect(conn)
    if inspector.has_table(VERSION_TABLE) or not inspector.has_table(LEGACY_TABLE):
        return None
    last = conn.execute(
        sa.select(sa.func.max(sa.column("version"))).select_from(sa.table(LEGACY_TABLE))
    ).scalar()
    if last is None:
        return None
    if last not in {s.revision for s in scripts().walk_revisions()}:
        raise LiquidityError(f"{LEGACY_TABLE} records {last!r}, which no revision matches")
    return last


def upgrade(conn: Connection, target: str = "head") -> list[str]:
    """``alembic upgrade target`` on ``conn``, inside the caller's transaction.

    A database made before Alembic is stamped first (see :func:`legacy_revision`).

    Returns
    -------
    list of str
        The revisions applied, oldest first (empty when the schema was current).
    """
    if target == "head" and _recorded(conn) == HEAD:
        return []
    from alembic import command

    applied: list[str] = []
    cfg = config(conn, applied)
    legacy = legacy_revision(conn)
    if legacy is not None:
        command.stamp(cfg, legacy)
    command.upgrade(cfg, target)
    return applied


def current(conn: Connection) -> dict:
    """The revision ``conn``'s database is at and whether it is the head.

    A database made before Alembic reports the revision it will be stamped at
    (``stamped`` False); a database without a schema reports None.
    """
    legacy = legacy_revision(conn)
    revision = legacy if legacy is not None else _stored_revision(conn)
    return {
        "revision": revision,
        "head": head(),
        "is_head": revision == head(),
        "stamped": legacy is None and revision is not None,
    }


def history() -> list[dict]:
    """The revisions, newest first: id, the one before it, and what it does."""
    return [
        {
            "revision": s.revision,
            "down_revision": s.down_revision,
            "description": s.doc,
            "is_head": s.is_head,
        }
        for s in scripts().walk_revisions()
    ]
