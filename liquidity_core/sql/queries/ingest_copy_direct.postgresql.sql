COPY market_snapshots (price, change_1h, change_24h, change_7d, volume_24h, market_cap,
                       snapshot_ts, source_file_id, coin_id, coin_name, symbol, extras)
FROM STDIN WITH (FORMAT binary)
