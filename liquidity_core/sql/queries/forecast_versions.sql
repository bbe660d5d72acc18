-- Model versions with stored forecasts: how many rows and snapshot times each.
SELECT model_version, COUNT(*) AS n_forecasts, COUNT(DISTINCT snapshot_ts) AS n_times,
       MAX(snapshot_ts) AS newest
FROM forecasts
GROUP BY model_version
