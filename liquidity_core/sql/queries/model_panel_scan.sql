-- What the first pass over the panel reads (liquidity_core/features/panel_stream.py,
-- scan): each stored snapshot's coin, time and the two measures of its log turnover,
-- between two times (NULL = unbounded), in time order. The second pass reads every
-- column (model_panel_chunks.sql).
SELECT coin_id, snapshot_ts, volume_24h, market_cap
FROM coin_snapshots
WHERE (:until IS NULL OR snapshot_ts <= :until)
  AND (:since IS NULL OR snapshot_ts >= :since)
ORDER BY snapshot_ts
