COPY ingest_stage (price, change_1h, change_24h, change_7d, volume_24h, market_cap,
                   snapshot_ts, coin_id, coin_name, symbol, extras, line)
FROM STDIN WITH (FORMAT binary)
