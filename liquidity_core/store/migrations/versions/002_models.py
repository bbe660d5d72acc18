"""The model history: one row per training run, promoted or not, and an event log.

Revision ID: 002_models
Revises: 001_ingest

``model_versions`` is append-only apart from status changes; ``model_events`` records
promotions, retirements and rollbacks.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "002_models"
down_revision = "001_ingest"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
FLOAT = sa.DOUBLE_PRECISION()


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("version", sa.Text(), primary_key=True, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("data_window_start", TS),
        sa.Column("data_window_end", TS),
        sa.Column("n_train_rows", sa.Integer(), nullable=False),
        sa.Column("data_fingerprint", sa.Text(), nullable=False),
        sa.Column("cv_scores", sa.Text(), nullable=False),
        sa.Column("cv_r2_mean", FLOAT),
        sa.Column("cv_r2_std", FLOAT),
        sa.Column("holdout_start", TS),
        sa.Column("holdout_end", TS),
        sa.Column("n_holdout_rows", sa.Integer(), nullable=False),
        sa.Column("holdout_r2", FLOAT),
        sa.Column("holdout_skill", FLOAT),
        sa.Column("champion_version", sa.Text()),
        sa.Column("champion_holdout_r2", FLOAT),
        sa.Column("persistence_r2", FLOAT),
        sa.Column("recent_mean_r2", FLOAT),
        sa.Column("holdout_r2_by_snapshot", sa.Text()),
        sa.Column("candidates", sa.Text()),
        sa.Column("band_edges", sa.Text(), nullable=False),
        sa.Column("artifact_path", sa.Text(), nullable=False),
        sa.Column("artifact_sha256", sa.CHAR(64), nullable=False),
        sa.Column("artifact_bytes", sa.BigInteger()),
        sa.Column("library_versions", sa.Text(), nullable=False),
        sa.Column("train_seconds", FLOAT),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text()),
        sa.CheckConstraint("status IN ('champion', 'retired', 'rejected')"),
    )
    op.create_index("model_versions_created", "model_versions", ["created_at"])
    # At most one champion, enforced by the database.
    champion = sa.text("status = 'champion'")
    op.create_index(
        "model_versions_one_champion",
        "model_versions",
        ["status"],
        unique=True,
        postgresql_where=champion,
        sqlite_where=champion,
    )
    op.create_table(
        "model_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            primary_key=True,
        ),
        sa.Column("version", sa.Text(), sa.ForeignKey("model_versions.version"), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("run_id", sa.Text()),
        sa.CheckConstraint("event IN ('promoted', 'rejected', 'retired', 'rolled_back')"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("model_events")
    op.drop_table("model_versions")
