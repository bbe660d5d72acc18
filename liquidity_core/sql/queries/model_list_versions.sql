SELECT * FROM model_versions ORDER BY created_at DESC, version DESC
