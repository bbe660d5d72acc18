SELECT id, version, event, reason, created_at, run_id FROM model_events ORDER BY id DESC
