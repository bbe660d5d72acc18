"""SQLite: the TEXT primary keys refuse NULL, as they always did on PostgreSQL.

Revision ID: 009_text_keys
Revises: 008_alembic

SQLite lets a column of a single-column TEXT ``PRIMARY KEY`` hold NULL unless it says
NOT NULL, and the tables before this revision did not (model_versions.version,
coin_aliases.alias_id, drift_references.model_version). SQLite cannot add NOT NULL in
place, so each table is copied under its new definition (batch mode), keeping its rows,
indexes and CHECK constraints; :func:`liquidity_core.store.db.upgrade` turns foreign key
checks off for the copy (the rows that reference model_versions stay as they are) and
checks every reference before it commits. ``legacy_alter_table`` lets the copy take the
old name while the views that read it (coin_snapshots) are left alone.
"""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import op

revision = "009_text_keys"
down_revision = "008_alembic"
branch_labels = None
depends_on = None

#: table -> (its TEXT key, its CHECK constraints, which a copy must restate: unnamed)
KEYS = {
    "model_versions": ("version", ["status IN ('champion', 'retired', 'rejected')"]),
    "coin_aliases": ("alias_id", []),
    "drift_references": ("model_version", []),
}


def _set_nullable(nullable: bool) -> None:
    if op.get_context().dialect.name != "sqlite":
        return  # a PostgreSQL key is NOT NULL already
    op.execute("PRAGMA legacy_alter_table = ON")
    for table, (key, checks) in KEYS.items():
        table_args = [sa.CheckConstraint(check) for check in checks]
        with warnings.catch_warnings():
            # Alembic warns that it leaves out the unnamed CHECK it reflects: restated above.
            warnings.filterwarnings("ignore", "Unnamed CHECK constraint", UserWarning)
            with op.batch_alter_table(table, recreate="always", table_args=table_args) as b:
                b.alter_column(key, existing_type=sa.Text(), nullable=nullable)
    op.execute("PRAGMA legacy_alter_table = OFF")


def upgrade() -> None:
    _set_nullable(False)


def downgrade() -> None:
    _set_nullable(True)
