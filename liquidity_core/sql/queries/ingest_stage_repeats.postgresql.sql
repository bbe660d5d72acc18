-- Staged rows whose (coin, time) came on an earlier line of the same file: (line, first line).
SELECT s.line, r.first_line
FROM ingest_stage s
JOIN (
    SELECT coin_id, snapshot_ts, MIN(line) AS first_line
    FROM ingest_stage
    GROUP BY coin_id, snapshot_ts
    HAVING COUNT(*) > 1
) r ON r.coin_id = s.coin_id AND r.snapshot_ts = s.snapshot_ts
WHERE s.line > r.first_line
ORDER BY s.line
