"""Honest evaluation of each training run: skill per holdout snapshot.

Revision ID: 005_model_skill
Revises: 004_coin_aliases

The share of holdout snapshots at which the model's squared error is below persistence's,
and the skill and R² of the model at every holdout snapshot (JSON: ISO time -> {"n",
"skill", "r2", "persistence_r2"}). Rows written before this revision have NULL in both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "005_model_skill"
down_revision = "004_coin_aliases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("snapshots_beating_persistence", sa.DOUBLE_PRECISION()))
        batch.add_column(sa.Column("holdout_skill_by_snapshot", sa.Text()))


def downgrade() -> None:
    # Both dialects drop a column in place (SQLite since 3.35): no copy of the table.
    op.drop_column("model_versions", "holdout_skill_by_snapshot")
    op.drop_column("model_versions", "snapshots_beating_persistence")
