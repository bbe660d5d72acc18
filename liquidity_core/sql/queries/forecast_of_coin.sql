-- Every stored forecast for one coin, oldest first, with the time of the snapshot that
-- came next (NULL while it has not arrived).
SELECT f.model_version, f.snapshot_ts, f.target_ts, f.predicted_log_turnover,
       f.lower_log_turnover, f.upper_log_turnover, f.nominal_level, f.created_at,
       (SELECT MIN(m.snapshot_ts) FROM market_snapshots m
        WHERE m.snapshot_ts > f.snapshot_ts) AS next_ts
FROM forecasts f
WHERE f.coin_id = :coin_id
ORDER BY f.snapshot_ts, f.created_at
