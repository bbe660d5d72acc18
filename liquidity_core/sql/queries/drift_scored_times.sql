-- The snapshot times whose drift is stored for a model version.
SELECT DISTINCT snapshot_ts FROM feature_drift WHERE model_version = :model_version
