INSERT INTO model_events (version, event, reason, created_at, run_id)
VALUES (:version, :event, :reason, :created_at, :run_id)
