"""Calibrated forecast intervals: each model version's calibration and holdout coverage.

Revision ID: 006_intervals
Revises: 005_model_skill

The split-conformal calibration of each model version (JSON: market-cap tercile edges and
residual quantiles, see liquidity_core/learn/intervals.py) and the coverage that its
nominal interval reached on the holdout, overall and per market-cap tercile (JSON list of
three). Rows written before this revision have NULL: their interval is the trees' spread.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "006_intervals"
down_revision = "005_model_skill"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("interval_calibration", sa.Text()))
        batch.add_column(sa.Column("holdout_coverage", sa.DOUBLE_PRECISION()))
        batch.add_column(sa.Column("holdout_coverage_by_tercile", sa.Text()))


def downgrade() -> None:
    # Both dialects drop a column in place (SQLite since 3.35): no copy of the table.
    op.drop_column("model_versions", "holdout_coverage_by_tercile")
    op.drop_column("model_versions", "holdout_coverage")
    op.drop_column("model_versions", "interval_calibration")
