SELECT * FROM model_versions WHERE status = 'champion'
