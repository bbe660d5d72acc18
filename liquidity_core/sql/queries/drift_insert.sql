-- One feature's PSI at one snapshot time for one model version; stored once.
INSERT INTO feature_drift (model_version, snapshot_ts, feature, psi, n_rows, created_at)
VALUES (:model_version, :snapshot_ts, :feature, :psi, :n_rows, :created_at)
ON CONFLICT (model_version, snapshot_ts, feature) DO NOTHING
