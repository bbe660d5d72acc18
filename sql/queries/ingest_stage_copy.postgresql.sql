COPY ingest_stage (coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h,
                   change_7d, volume_24h, market_cap, extras) FROM STDIN WITH (FORMAT csv)
