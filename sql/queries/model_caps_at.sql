-- Market caps of every coin at one snapshot time (NULL = the newest), for the
-- market-cap rank feature at prediction time.
SELECT coin_id, market_cap FROM market_snapshots
WHERE snapshot_ts = COALESCE(:ts, (SELECT MAX(snapshot_ts) FROM market_snapshots))
