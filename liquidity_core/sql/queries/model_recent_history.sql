-- Every coin's snapshots at the newest "keep" distinct snapshot times: the history that
-- prediction-time features can use (read once per data version, see predict.py).
SELECT coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h, change_7d,
       volume_24h, market_cap, extras
FROM coin_snapshots
WHERE snapshot_ts >= (
        SELECT MIN(recent.snapshot_ts) FROM (
            SELECT DISTINCT snapshot_ts FROM market_snapshots
            ORDER BY snapshot_ts DESC LIMIT :keep
        ) recent
      )
ORDER BY snapshot_ts, coin_id
