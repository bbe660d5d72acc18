-- Whether any snapshot is stored in a time range (the fast path needs none).
SELECT EXISTS (SELECT 1 FROM market_snapshots WHERE snapshot_ts BETWEEN :lo AND :hi)
