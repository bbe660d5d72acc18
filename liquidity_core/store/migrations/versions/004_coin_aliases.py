"""Coin identity across renames: coin_aliases and the view coin_snapshots.

Revision ID: 004_coin_aliases
Revises: 003_snapshot_key

market_snapshots.coin_id stays the slug of the name as read; coin_aliases maps a later
name's slug (alias_id) to the coin it continues (coin_id, the root of a chain of renames).
It is derived data: after every load, liquidity_core.store.identity.recompute rebuilds it
from the stored (coin_id, symbol, snapshot_ts, market_cap), so the order files arrive in
cannot matter. Every reader goes through the view coin_snapshots, which applies the mapping.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "004_coin_aliases"
down_revision = "003_snapshot_key"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "coin_aliases",
        sa.Column("alias_id", sa.Text(), primary_key=True, nullable=True),
        sa.Column("coin_id", sa.Text(), nullable=False),
        sa.Column("previous_id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("previous_last_ts", TS, nullable=False),
        sa.Column("alias_first_ts", TS, nullable=False),
        sa.Column("cap_ratio", sa.DOUBLE_PRECISION(), nullable=False),
        sa.Column("decided_at", TS, nullable=False),
    )
    op.execute(
        """
        CREATE VIEW coin_snapshots AS
        SELECT COALESCE(a.coin_id, s.coin_id) AS coin_id, s.coin_id AS name_id, s.snapshot_ts,
               s.coin_name, s.symbol, s.price, s.change_1h, s.change_24h, s.change_7d,
               s.volume_24h, s.market_cap, s.extras, s.source_file_id
        FROM market_snapshots s
        LEFT JOIN coin_aliases a ON a.alias_id = s.coin_id
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW coin_snapshots")
    op.drop_table("coin_aliases")
