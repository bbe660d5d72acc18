INSERT INTO model_versions (
    version, created_at, algorithm, params, features, data_window_start, data_window_end,
    n_train_rows, data_fingerprint, cv_scores, cv_r2_mean, cv_r2_std, holdout_start,
    holdout_end, n_holdout_rows, holdout_r2, holdout_skill, champion_version,
    champion_holdout_r2, persistence_r2, recent_mean_r2, holdout_r2_by_snapshot, candidates,
    band_edges, artifact_path, artifact_sha256, artifact_bytes, library_versions,
    train_seconds, status, reason, run_id, snapshots_beating_persistence,
    holdout_skill_by_snapshot, interval_calibration, holdout_coverage,
    holdout_coverage_by_tercile
) VALUES (
    :version, :created_at, :algorithm, :params, :features, :data_window_start,
    :data_window_end, :n_train_rows, :data_fingerprint, :cv_scores, :cv_r2_mean, :cv_r2_std,
    :holdout_start, :holdout_end, :n_holdout_rows, :holdout_r2, :holdout_skill,
    :champion_version, :champion_holdout_r2, :persistence_r2, :recent_mean_r2,
    :holdout_r2_by_snapshot, :candidates, :band_edges, :artifact_path, :artifact_sha256,
    :artifact_bytes, :library_versions, :train_seconds, :status, :reason, :run_id,
    :snapshots_beating_persistence, :holdout_skill_by_snapshot, :interval_calibration,
    :holdout_coverage, :holdout_coverage_by_tercile
)
