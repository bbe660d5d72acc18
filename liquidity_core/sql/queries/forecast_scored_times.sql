-- The snapshot times a model version has forecast.
SELECT DISTINCT snapshot_ts FROM forecasts WHERE model_version = :model_version
ORDER BY snapshot_ts
