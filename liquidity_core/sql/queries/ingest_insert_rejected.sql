INSERT INTO rejected_rows (file_id, line_number, reason, raw_line)
VALUES (:file_id, :line_number, :reason, :raw_line)
