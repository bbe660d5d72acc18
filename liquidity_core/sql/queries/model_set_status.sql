UPDATE model_versions SET status = :status WHERE version = :version
