-- The closed loop (issue 14): every forecast the champion made, what then happened, and
-- how far each new snapshot drifted from the champion's training window.
--
-- forecasts: one row per (model_version, coin_id, snapshot_ts), written once by the
-- forecast task (INSERT ... ON CONFLICT DO NOTHING: a re-run adds nothing) and never
-- updated. coin_id is the coin identity (coin_snapshots) at forecast time. target_ts is
-- the time the next snapshot was *expected* at when the forecast was made (snapshot_ts
-- plus the panel's latest gap between snapshot times; NULL with one snapshot time): the
-- next time is unknown then. The outcome is matched to the snapshot that really came
-- next (the view below), which is the model's target by definition. current_log_turnover
-- is the coin's log turnover at snapshot_ts, the persistence forecast of the same row.

CREATE TABLE IF NOT EXISTS forecasts (
    model_version TEXT NOT NULL REFERENCES model_versions (version),
    coin_id TEXT NOT NULL,
    snapshot_ts {{TS}} NOT NULL,
    target_ts {{TS}},
    predicted_log_turnover DOUBLE PRECISION NOT NULL,
    lower_log_turnover DOUBLE PRECISION NOT NULL,
    upper_log_turnover DOUBLE PRECISION NOT NULL,
    nominal_level DOUBLE PRECISION NOT NULL,
    level TEXT NOT NULL,
    current_log_turnover DOUBLE PRECISION,
    history_snapshots INTEGER NOT NULL,
    created_at {{TS}} NOT NULL,
    PRIMARY KEY (model_version, snapshot_ts, coin_id)
);

CREATE INDEX IF NOT EXISTS forecasts_snapshot ON forecasts (snapshot_ts, coin_id);

-- Outcomes: each forecast whose target has arrived, with the realized volume and market
-- cap of the same coin (following renames through coin_aliases / coin_snapshots) at the
-- first stored snapshot time after snapshot_ts. A forecast whose coin is absent from
-- that snapshot has no outcome, as a training row has no target then. The log turnover
-- is computed in Python (liquidity_core.model.features.log_turnover, one definition).

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
                     AND r.snapshot_ts = nxt.next_ts;

-- Drift: the reference of each model version's training window (JSON: per feature the
-- bin edges and shares, see liquidity_core/model/drift.py), computed once from the rows
-- the version was fitted on, and the population stability index of every feature at each
-- snapshot time the version forecast. Information only: nothing reads it to block.

CREATE TABLE IF NOT EXISTS drift_references (
    model_version TEXT PRIMARY KEY REFERENCES model_versions (version),
    reference TEXT NOT NULL,
    created_at {{TS}} NOT NULL
);

CREATE TABLE IF NOT EXISTS feature_drift (
    model_version TEXT NOT NULL REFERENCES model_versions (version),
    snapshot_ts {{TS}} NOT NULL,
    feature TEXT NOT NULL,
    psi DOUBLE PRECISION,
    n_rows INTEGER NOT NULL,
    created_at {{TS}} NOT NULL,
    PRIMARY KEY (model_version, snapshot_ts, feature)
);
