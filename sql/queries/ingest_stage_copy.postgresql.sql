-- Binary COPY; the column order is the one liquidity_core.ingest.BINARY_COLUMNS encodes.
COPY ingest_stage (price, change_1h, change_24h, change_7d, volume_24h, market_cap,
                   snapshot_ts, coin_id, coin_name, symbol, extras)
FROM STDIN WITH (FORMAT binary)
