-- Every stored snapshot between two times (NULL = unbounded), in time order, for the
-- chunked reads of training and the report (liquidity_core/model/panel_stream.py).
SELECT coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h, change_7d,
       volume_24h, market_cap, extras
FROM coin_snapshots
WHERE (:until IS NULL OR snapshot_ts <= :until)
  AND (:since IS NULL OR snapshot_ts >= :since)
ORDER BY snapshot_ts, coin_id
