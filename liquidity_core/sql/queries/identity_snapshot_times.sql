-- The panel's distinct snapshot times, oldest first.
SELECT DISTINCT snapshot_ts FROM market_snapshots ORDER BY snapshot_ts
