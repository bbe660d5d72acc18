-- One set-based upsert from the staging table; sorted so that concurrent loads of
-- overlapping files take row locks in the same order.
INSERT INTO market_snapshots (coin_id, snapshot_ts, coin_name, symbol, price, change_1h,
                              change_24h, change_7d, volume_24h, market_cap, extras,
                              source_file_id)
SELECT coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h, change_7d,
       volume_24h, market_cap, extras, :file_id
FROM ingest_stage
ORDER BY snapshot_ts, coin_id
ON CONFLICT (coin_id, snapshot_ts) DO NOTHING
