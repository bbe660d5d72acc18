UPDATE ingest_files
SET rows_in_file = :rows_in_file, rows_loaded = :rows_loaded, rows_existing = :rows_existing,
    rows_rejected = :rows_rejected, finished_at = :finished_at
WHERE id = :id
