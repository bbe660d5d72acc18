-- The ledger row that loaded these bytes, if any.
SELECT id, file_name, finished_at FROM ingest_files WHERE sha256 = :sha256 AND status = 'loaded'
