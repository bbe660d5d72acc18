-- Rows at each snapshot time, oldest first (the report's totals and its recent window).
SELECT snapshot_ts, COUNT(*) AS n
FROM market_snapshots
GROUP BY snapshot_ts
ORDER BY snapshot_ts
