-- Ingestion: the file ledger, the snapshots themselves, and rows that failed checks.
-- {{ID}} and {{TS}} are replaced per dialect by liquidity_core.db.render_sql.

CREATE TABLE IF NOT EXISTS ingest_files (
    id {{ID}},
    sha256 CHAR(64) NOT NULL,
    file_name TEXT NOT NULL,
    file_format TEXT,
    status TEXT NOT NULL CHECK (status IN ('loaded', 'duplicate', 'quarantined')),
    rows_in_file INTEGER NOT NULL DEFAULT 0,
    rows_loaded INTEGER NOT NULL DEFAULT 0,
    rows_existing INTEGER NOT NULL DEFAULT 0,
    rows_rejected INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    duplicate_of BIGINT REFERENCES ingest_files (id),
    started_at {{TS}} NOT NULL,
    finished_at {{TS}} NOT NULL
);

-- A file's bytes load at most once: one 'loaded' row per sha256. Duplicates and
-- quarantined attempts are recorded beside it.
CREATE UNIQUE INDEX IF NOT EXISTS ingest_files_loaded_sha256
    ON ingest_files (sha256) WHERE status = 'loaded';

CREATE TABLE IF NOT EXISTS market_snapshots (
    coin_id TEXT NOT NULL,
    snapshot_ts {{TS}} NOT NULL,
    coin_name TEXT NOT NULL,
    symbol TEXT NOT NULL,
    price DOUBLE PRECISION NOT NULL,
    change_1h DOUBLE PRECISION,
    change_24h DOUBLE PRECISION,
    change_7d DOUBLE PRECISION,
    volume_24h DOUBLE PRECISION NOT NULL,
    market_cap DOUBLE PRECISION NOT NULL,
    extras TEXT,
    source_file_id BIGINT NOT NULL REFERENCES ingest_files (id),
    PRIMARY KEY (coin_id, snapshot_ts)
);

CREATE INDEX IF NOT EXISTS market_snapshots_ts ON market_snapshots (snapshot_ts);

CREATE INDEX IF NOT EXISTS market_snapshots_symbol ON market_snapshots (symbol);

CREATE TABLE IF NOT EXISTS rejected_rows (
    id {{ID}},
    file_id BIGINT NOT NULL REFERENCES ingest_files (id),
    line_number INTEGER NOT NULL,
    reason TEXT NOT NULL,
    raw_line TEXT
);

CREATE INDEX IF NOT EXISTS rejected_rows_file ON rejected_rows (file_id);
