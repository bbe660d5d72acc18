-- Every stored forecast whose target snapshot has arrived, with the realized values.
SELECT model_version, coin_id, snapshot_ts, target_ts, predicted_log_turnover,
       lower_log_turnover, upper_log_turnover, nominal_level, current_log_turnover,
       realized_volume_24h, realized_market_cap
FROM forecast_outcomes
ORDER BY model_version, snapshot_ts, coin_id
