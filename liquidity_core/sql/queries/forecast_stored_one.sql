-- The stored forecast of one model version for one coin at one snapshot time.
SELECT model_version, coin_id, snapshot_ts, target_ts, predicted_log_turnover,
       lower_log_turnover, upper_log_turnover, nominal_level, level,
       current_log_turnover, history_snapshots, created_at
FROM forecasts
WHERE model_version = :model_version AND coin_id = :coin_id AND snapshot_ts = :snapshot_ts
