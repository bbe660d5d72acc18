COPY rejected_rows (file_id, line_number, reason, raw_line) FROM STDIN WITH (FORMAT csv, NULL 'nan')
