COPY market_snapshots (coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h,
                       change_7d, volume_24h, market_cap, extras, source_file_id)
FROM STDIN WITH (FORMAT csv, NULL 'nan')
