SELECT * FROM model_versions WHERE version = :version
