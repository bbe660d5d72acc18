"""Alembic takes over: the table of applied ``sql/`` files goes.

Revision ID: 008_alembic
Revises: 007_forecasts

A database made before Alembic recorded the ``sql/NNN_*.sql`` files it applied in
``schema_migrations``. It is stamped at the last of them (see
liquidity_core.store.migrate) and brought here; from now on the version table of our
revisions is the only record, so the old table is dropped. A database Alembic made
never had it.
"""

from __future__ import annotations

from alembic import op

revision = "008_alembic"
down_revision = "007_forecasts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TABLE IF EXISTS schema_migrations")


def downgrade() -> None:
    pass
