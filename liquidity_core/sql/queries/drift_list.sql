-- Stored drift, newest snapshot first.
SELECT model_version, snapshot_ts, feature, psi, n_rows
FROM feature_drift
ORDER BY snapshot_ts DESC, model_version, feature
