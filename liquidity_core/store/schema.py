"""The database tables, defined once, as the migrations in ``sql/`` leave them.

Each table is a SQLAlchemy Core :class:`~sqlalchemy.Table`; every column list and key
tuple in the code is derived from these, and the statements that are not bulk loads are
built from them (``insert(model_versions)``, ``select(ingest_files.c.id)``, ...). The
migrations (``sql/NNN_*.sql``) stay the only thing that creates or changes tables, and
the bulk PostgreSQL statements (COPY, the staging table) stay ``.sql`` files:
``tests/test_schema.py`` checks that these tables match a migrated database on SQLite and
PostgreSQL, and that every COPY column list matches its table.

Times are ``TIMESTAMPTZ`` on PostgreSQL and ISO 8601 text on SQLite (:data:`TS`); JSON
documents are text, marked ``info={"json": True}``.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: A time: TIMESTAMPTZ on PostgreSQL, ISO 8601 text (``YYYY-MM-DDTHH:MM:SS+00:00``) on SQLite.
TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
#: An identity key: BIGINT on PostgreSQL, INTEGER (the rowid) on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = {"json": True}


def _float(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.Double(), **kw)


def _json(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.Text(), info=_JSON, **kw)


def _version_of(**kw) -> sa.Column:
    """``model_version``, a reference to ``model_versions``."""
    return sa.Column("model_version", sa.Text(), sa.ForeignKey("model_versions.version"), **kw)


#: The ledger: one row per file read (``sql/001_ingest.sql``).
ingest_files = sa.Table(
    "ingest_files",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.CHAR(64), nullable=False),
    sa.Column("file_name", sa.Text(), nullable=False),
    sa.Column("file_format", sa.Text()),
    sa.Column("status", sa.Text(), nullable=False),  # loaded, duplicate, quarantined
    sa.Column("rows_in_file", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("rows_loaded", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("rows_existing", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("error", sa.Text()),
    sa.Column("duplicate_of", sa.BigInteger(), sa.ForeignKey("ingest_files.id")),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=False),
)


def _snapshot_columns() -> list[sa.Column]:
    """The columns of a stored snapshot (new objects: a column belongs to one table)."""
    return [
        sa.Column("coin_id", sa.Text(), nullable=False),
        sa.Column("snapshot_ts", TS, nullable=False),
        sa.Column("coin_name", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        _float("price", nullable=False),
        _float("change_1h"),
        _float("change_24h"),
        _float("change_7d"),
        _float("volume_24h", nullable=False),
        _float("market_cap", nullable=False),
        _json("extras"),  # {"name": value} of the extra numeric columns of the file
        sa.Column("source_file_id", sa.BigInteger(), nullable=False),
    ]


#: One row per coin and snapshot time, keyed ``(snapshot_ts, coin_id)`` (migration 003).
market_snapshots = sa.Table(
    "market_snapshots",
    metadata,
    *_snapshot_columns(),
    sa.PrimaryKeyConstraint("snapshot_ts", "coin_id"),
)

#: Rows of a file that failed a check, with the reason.
rejected_rows = sa.Table(
    "rejected_rows",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("file_id", sa.BigInteger(), sa.ForeignKey("ingest_files.id"), nullable=False),
    sa.Column("line_number", sa.Integer(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("raw_line", sa.Text()),
)

#: One row per training run (``sql/002_models.sql``, 005, 006); append-only but ``status``.
model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("version", sa.Text(), primary_key=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("algorithm", sa.Text(), nullable=False),
    _json("params", nullable=False),
    _json("features", nullable=False),
    sa.Column("data_window_start", TS),
    sa.Column("data_window_end", TS),
    sa.Column("n_train_rows", sa.Integer(), nullable=False),
    sa.Column("data_fingerprint", sa.Text(), nullable=False),
    _json("cv_scores", nullable=False),
    _float("cv_r2_mean"),
    _float("cv_r2_std"),
    sa.Column("holdout_start", TS),
    sa.Column("holdout_end", TS),
    sa.Column("n_holdout_rows", sa.Integer(), nullable=False),
    _float("holdout_r2"),
    _float("holdout_skill"),
    sa.Column("champion_version", sa.Text()),
    _float("champion_holdout_r2"),
    _float("persistence_r2"),
    _float("recent_mean_r2"),
    _json("holdout_r2_by_snapshot"),
    _json("candidates"),
    _json("band_edges", nullable=False),
    sa.Column("artifact_path", sa.Text(), nullable=False),
    sa.Column("artifact_sha256", sa.CHAR(64), nullable=False),
    sa.Column("artifact_bytes", sa.BigInteger()),
    _json("library_versions", nullable=False),
    _float("train_seconds"),
    sa.Column("status", sa.Text(), nullable=False),  # champion, retired, rejected
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("run_id", sa.Text()),
    _float("snapshots_beating_persistence"),
    _json("holdout_skill_by_snapshot"),
    _json("interval_calibration"),
    _float("holdout_coverage"),
    _json("holdout_coverage_by_tercile"),
)

#: Each promotion, retirement, rejection and rollback.
model_events = sa.Table(
    "model_events",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("version", sa.Text(), sa.ForeignKey("model_versions.version"), nullable=False),
    sa.Column("event", sa.Text(), nullable=False),  # promoted, rejected, retired, rolled_back
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("run_id", sa.Text()),
)

#: One row per later name of a coin (``sql/004_coin_aliases.sql``, see ``identity.py``).
coin_aliases = sa.Table(
    "coin_aliases",
    metadata,
    sa.Column("alias_id", sa.Text(), primary_key=True),
    sa.Column("coin_id", sa.Text(), nullable=False),
    sa.Column("previous_id", sa.Text(), nullable=False),
    sa.Column("symbol", sa.Text(), nullable=False),
    sa.Column("previous_last_ts", TS, nullable=False),
    sa.Column("alias_first_ts", TS, nullable=False),
    _float("cap_ratio", nullable=False),
    sa.Column("decided_at", TS, nullable=False),
)

#: Every forecast a champion stored, written once, never updated (``sql/007_forecasts.sql``).
forecasts = sa.Table(
    "forecasts",
    metadata,
    _version_of(nullable=False),
    sa.Column("coin_id", sa.Text(), nullable=False),
    sa.Column("snapshot_ts", TS, nullable=False),
    sa.Column("target_ts", TS),  # when the next snapshot was expected; NULL: one time known
    _float("predicted_log_turnover", nullable=False),
    _float("lower_log_turnover", nullable=False),
    _float("upper_log_turnover", nullable=False),
    _float("nominal_level", nullable=False),
    sa.Column("level", sa.Text(), nullable=False),
    _float("current_log_turnover"),
    sa.Column("history_snapshots", sa.Integer(), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.PrimaryKeyConstraint("model_version", "snapshot_ts", "coin_id"),
    sa.Index("forecasts_snapshot", "snapshot_ts", "coin_id"),
)

#: The training-window reference (JSON bin edges and shares) of each model version (drift).
drift_references = sa.Table(
    "drift_references",
    metadata,
    _version_of(primary_key=True),
    _json("reference", nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

#: The PSI of each feature at each snapshot time a model version forecast.
feature_drift = sa.Table(
    "feature_drift",
    metadata,
    _version_of(nullable=False),
    sa.Column("snapshot_ts", TS, nullable=False),
    sa.Column("feature", sa.Text(), nullable=False),
    _float("psi"),
    sa.Column("n_rows", sa.Integer(), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.PrimaryKeyConstraint("model_version", "snapshot_ts", "feature"),
)

#: The migrations applied (created by :func:`liquidity_core.store.db.upgrade` itself).
schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Text(), primary_key=True),
    sa.Column("applied_at", sa.Text(), nullable=False),
)

#: The view ``coin_snapshots`` (migration 004): ``market_snapshots`` with ``coin_id``
#: following renames, plus ``name_id``, the id of the name the row was stored under.
views = sa.MetaData()
_view_columns = _snapshot_columns()
coin_snapshots = sa.Table(
    "coin_snapshots",
    views,
    _view_columns[0],
    sa.Column("name_id", sa.Text()),
    *_view_columns[1:],
)

#: The view ``forecast_outcomes`` (migration 007): each stored forecast whose next snapshot
#: has arrived, ``target_ts`` being that snapshot's time (``expected_ts`` the forecast's
#: guess), with the realized volume and market cap of the same coin (renames followed).
forecast_outcomes = sa.Table(
    "forecast_outcomes",
    views,
    sa.Column("model_version", sa.Text()),
    sa.Column("coin_id", sa.Text()),
    sa.Column("snapshot_ts", TS),
    sa.Column("expected_ts", TS),
    sa.Column("target_ts", TS),
    _float("predicted_log_turnover"),
    _float("lower_log_turnover"),
    _float("upper_log_turnover"),
    _float("nominal_level"),
    sa.Column("level", sa.Text()),
    _float("current_log_turnover"),
    _float("realized_volume_24h"),
    _float("realized_market_cap"),
)

# --- derived column lists --------------------------------------------------------------------

#: The measured numbers of a snapshot, in table order: price, changes, volume, market cap.
MEASURES = tuple(c.name for c in market_snapshots.columns if isinstance(c.type, sa.Double))
#: The measures every stored row has (NOT NULL): price, volume, market cap.
REQUIRED_MEASURES = tuple(c for c in MEASURES if not market_snapshots.c[c].nullable)
#: The relative price changes (fractions): change_1h, change_24h, change_7d.
CHANGES = tuple(c for c in MEASURES if c.startswith("change_"))
#: A snapshot as the code reads it: the stored columns but the JSON extras and the ledger key.
SNAPSHOT_COLUMNS = tuple(
    c.name for c in market_snapshots.columns if c.name not in ("extras", "source_file_id")
)
#: The primary key columns of ``market_snapshots``.
SNAPSHOT_KEY = tuple(c.name for c in market_snapshots.primary_key.columns)


def json_columns(table: sa.Table) -> tuple[str, ...]:
    """Names of ``table``'s columns that hold JSON text."""
    return tuple(c.name for c in table.columns if c.info.get("json"))


def time_columns(table: sa.Table) -> tuple[str, ...]:
    """Names of ``table``'s time columns (:data:`TS`)."""
    return tuple(c.name for c in table.columns if c.type is TS)
