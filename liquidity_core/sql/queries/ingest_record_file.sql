-- A duplicate or quarantined file: recorded beside the loaded ones, with the reason.
INSERT INTO ingest_files (sha256, file_name, file_format, status, rows_in_file, rows_rejected,
                          error, duplicate_of, started_at, finished_at)
VALUES (:sha256, :file_name, :file_format, :status, :rows_in_file, :rows_rejected,
        :error, :duplicate_of, :started_at, :finished_at)
RETURNING id
