-- Recent snapshots of some coins (by coin_id or symbol) for prediction-time features:
-- only the newest keep distinct snapshot times are read.
-- coin_ids and symbols are expanding lists.
SELECT coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h, change_7d,
       volume_24h, market_cap, extras
FROM market_snapshots
WHERE snapshot_ts >= (
        SELECT MIN(recent.snapshot_ts) FROM (
            SELECT DISTINCT snapshot_ts FROM market_snapshots
            ORDER BY snapshot_ts DESC LIMIT :keep
        ) recent
      )
  AND (coin_id IN :coin_ids OR symbol IN :symbols)
ORDER BY snapshot_ts, coin_id
