-- The model history: one row per training run, promoted or not (append-only apart from
-- status changes), and an event log of promotions, retirements and rollbacks.

CREATE TABLE IF NOT EXISTS model_versions (
    version TEXT PRIMARY KEY,
    created_at {{TS}} NOT NULL,
    algorithm TEXT NOT NULL,
    params TEXT NOT NULL,
    features TEXT NOT NULL,
    data_window_start {{TS}},
    data_window_end {{TS}},
    n_train_rows INTEGER NOT NULL,
    data_fingerprint TEXT NOT NULL,
    cv_scores TEXT NOT NULL,
    cv_r2_mean DOUBLE PRECISION,
    cv_r2_std DOUBLE PRECISION,
    holdout_start {{TS}},
    holdout_end {{TS}},
    n_holdout_rows INTEGER NOT NULL,
    holdout_r2 DOUBLE PRECISION,
    holdout_skill DOUBLE PRECISION,
    champion_version TEXT,
    champion_holdout_r2 DOUBLE PRECISION,
    persistence_r2 DOUBLE PRECISION,
    recent_mean_r2 DOUBLE PRECISION,
    holdout_r2_by_snapshot TEXT,
    candidates TEXT,
    band_edges TEXT NOT NULL,
    artifact_path TEXT NOT NULL,
    artifact_sha256 CHAR(64) NOT NULL,
    artifact_bytes BIGINT,
    library_versions TEXT NOT NULL,
    train_seconds DOUBLE PRECISION,
    status TEXT NOT NULL CHECK (status IN ('champion', 'retired', 'rejected')),
    reason TEXT NOT NULL,
    run_id TEXT
);

CREATE INDEX IF NOT EXISTS model_versions_created ON model_versions (created_at);

-- At most one champion, enforced by the database.
CREATE UNIQUE INDEX IF NOT EXISTS model_versions_one_champion
    ON model_versions (status) WHERE status = 'champion';

CREATE TABLE IF NOT EXISTS model_events (
    id {{ID}},
    version TEXT NOT NULL REFERENCES model_versions (version),
    event TEXT NOT NULL CHECK (event IN ('promoted', 'rejected', 'retired', 'rolled_back')),
    reason TEXT NOT NULL,
    created_at {{TS}} NOT NULL,
    run_id TEXT
);
