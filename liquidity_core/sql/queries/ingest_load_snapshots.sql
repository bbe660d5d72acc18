-- Stored snapshots, optionally up to a time and for some coins or symbols.
-- coin_ids and symbols are expanding lists; all_coins or all_symbols = 1 disables a list.
SELECT coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h, change_7d,
       volume_24h, market_cap, extras
FROM coin_snapshots
WHERE (:until IS NULL OR snapshot_ts <= :until)
  AND (:all_coins = 1 OR coin_id IN :coin_ids)
  AND (:all_symbols = 1 OR symbol IN :symbols)
ORDER BY snapshot_ts, coin_id
