-- Claim the bytes of a file for loading: the partial unique index on sha256 (status 'loaded')
-- lets one claim win; a concurrent claimer waits for it, then gets no row back.
INSERT INTO ingest_files (sha256, file_name, file_format, status, rows_in_file, rows_rejected,
                          started_at, finished_at)
VALUES (:sha256, :file_name, :file_format, 'loaded', :rows_in_file, :rows_rejected,
        :started_at, :finished_at)
ON CONFLICT (sha256) WHERE status = 'loaded' DO NOTHING
RETURNING id
