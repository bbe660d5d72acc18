SELECT * FROM model_versions WHERE run_id = :run_id ORDER BY created_at DESC
