-- Stored forecasts of a model version.
SELECT COUNT(*) AS n FROM forecasts WHERE model_version = :model_version
