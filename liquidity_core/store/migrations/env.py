"""The Alembic environment: runs the revisions on the connection the caller gives.

Configured in code by :func:`liquidity_core.store.migrate.config` (no ``alembic.ini``):
``config.attributes["connection"]`` is an open connection, usually inside the caller's
transaction (the whole upgrade commits or rolls back as one), and
``config.attributes["applied"]`` collects the revisions applied. Revisions are recorded in
our own version table; SQLite alters tables in batch mode (a copy under the new definition).
"""

from __future__ import annotations

from alembic import context

from liquidity_core.store.migrate import compare_options
from liquidity_core.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run the migrations through liquidity_core.store.db.upgrade(engine)")
applied = config.attributes.setdefault("applied", [])


def _record(*, ctx, step, heads, run_args) -> None:
    if not step.is_stamp and step.is_upgrade:
        applied.append(step.up_revision_id)


context.configure(
    connection=connection,
    target_metadata=metadata,
    **compare_options(connection.dialect.name),
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
    on_version_apply=_record,
)
with context.begin_transaction():
    context.run_migrations()
