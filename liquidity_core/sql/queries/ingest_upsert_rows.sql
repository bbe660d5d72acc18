-- SQLite: one executemany of this statement; rows already stored are left as they are.
INSERT INTO market_snapshots (coin_id, snapshot_ts, coin_name, symbol, price, change_1h,
                              change_24h, change_7d, volume_24h, market_cap, extras,
                              source_file_id)
VALUES (:coin_id, :snapshot_ts, :coin_name, :symbol, :price, :change_1h, :change_24h,
        :change_7d, :volume_24h, :market_cap, :extras, :source_file_id)
ON CONFLICT (coin_id, snapshot_ts) DO NOTHING
