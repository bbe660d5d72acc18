"""The closed loop: stored forecasts, their outcomes (a view), and drift.

Revision ID: 007_forecasts
Revises: 006_intervals

forecasts: one row per (model_version, coin_id, snapshot_ts), written once by the forecast
task (INSERT ... ON CONFLICT DO NOTHING: a re-run adds nothing) and never updated. coin_id
is the coin identity (coin_snapshots) at forecast time. target_ts is the time the next
snapshot was *expected* at when the forecast was made (snapshot_ts plus the panel's latest
gap between snapshot times; NULL with one snapshot time): the next time is unknown then.
The outcome is matched to the snapshot that really came next (the view forecast_outcomes),
which is the model's target by definition. current_log_turnover is the coin's log turnover
at snapshot_ts, the persistence forecast of the same row.

forecast_outcomes: each forecast whose target has arrived, with the realized volume and
market cap of the same coin (following renames through coin_aliases / coin_snapshots) at
the first stored snapshot time after snapshot_ts. A forecast whose coin is absent from
that snapshot has no outcome, as a training row has no target then. The log turnover is
computed in Python (one definition).

Drift: the reference of each model version's training window (JSON: per feature the bin
edges and shares), computed once from the rows the version was fitted on, and the
population stability index of every feature at each snapshot time the version forecast.
Information only: nothing reads it to block.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "007_forecasts"
down_revision = "006_intervals"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
FLOAT = sa.DOUBLE_PRECISION()


def _version(**kw) -> sa.Column:
    return sa.Column("model_version", sa.Text(), sa.ForeignKey("model_versions.version"), **kw)


def upgrade() -> None:
    op.create_table(
        "forecasts",
        _version(nullable=False),
        sa.Column("coin_id", sa.Text(), nullable=False),
        sa.Column("snapshot_ts", TS, nullable=False),
        sa.Column("target_ts", TS),
        sa.Column("predicted_log_turnover", FLOAT, nullable=False),
        sa.Column("lower_log_turnover", FLOAT, nullable=False),
        sa.Column("upper_log_turnover", FLOAT, nullable=False),
        sa.Column("nominal_level", FLOAT, nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("current_log_turnover", FLOAT),
        sa.Column("history_snapshots", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("model_version", "snapshot_ts", "coin_id"),
    )
    op.create_index("forecasts_snapshot", "forecasts", ["snapshot_ts", "coin_id"])
    op.execute(
        """
        CREATE VIEW forecast_outcomes AS
        SELECT f.model_version, f.coin_id, f.snapshot_ts, f.target_ts AS expected_ts,
               nxt.next_ts AS target_ts, f.predicted_log_turnover, f.lower_log_turnover,
               f.upper_log_turnover, f.nominal_level, f.level, f.current_log_turnover,
               r.volume_24h AS realized_volume_24h, r.market_cap AS realized_market_cap
        FROM forecasts f
        JOIN (
            SELECT t.snapshot_ts,
                   (SELECT MIN(m.snapshot_ts) FROM market_snapshots m
                    WHERE m.snapshot_ts > t.snapshot_ts) AS next_ts
            FROM (SELECT DISTINCT snapshot_ts FROM forecasts) t
        ) nxt ON nxt.snapshot_ts = f.snapshot_ts
        LEFT JOIN coin_aliases a ON a.alias_id = f.coin_id
        JOIN coin_snapshots r ON r.coin_id = COALESCE(a.coin_id, f.coin_id)
                             AND r.snapshot_ts = nxt.next_ts
        """
    )
    op.create_table(
        "drift_references",
        _version(primary_key=True, nullable=True),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "feature_drift",
        _version(nullable=False),
        sa.Column("snapshot_ts", TS, nullable=False),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("psi", FLOAT),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("model_version", "snapshot_ts", "feature"),
    )


def downgrade() -> None:
    op.drop_table("feature_drift")
    op.drop_table("drift_references")
    op.execute("DROP VIEW forecast_outcomes")
    op.drop_table("forecasts")
