-- Store a model version's training-window reference once.
INSERT INTO drift_references (model_version, reference, created_at)
VALUES (:model_version, :reference, :created_at)
ON CONFLICT (model_version) DO NOTHING
