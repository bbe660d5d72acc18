-- One stored forecast; a row already stored for (model_version, coin_id, snapshot_ts)
-- is left as it is.
INSERT INTO forecasts (model_version, coin_id, snapshot_ts, target_ts,
                       predicted_log_turnover, lower_log_turnover, upper_log_turnover,
                       nominal_level, level, current_log_turnover, history_snapshots,
                       created_at)
VALUES (:model_version, :coin_id, :snapshot_ts, :target_ts, :predicted_log_turnover,
        :lower_log_turnover, :upper_log_turnover, :nominal_level, :level,
        :current_log_turnover, :history_snapshots, :created_at)
ON CONFLICT (model_version, snapshot_ts, coin_id) DO NOTHING
