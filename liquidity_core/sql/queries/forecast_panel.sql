-- Stored snapshots (coin identity applied) between two times, inclusive: the history the
-- forecast task builds features from.
SELECT coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h, change_7d,
       volume_24h, market_cap, extras
FROM coin_snapshots
WHERE snapshot_ts >= :since AND snapshot_ts <= :until
ORDER BY snapshot_ts, coin_id
