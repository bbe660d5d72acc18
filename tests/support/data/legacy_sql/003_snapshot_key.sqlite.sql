-- Snapshots keyed time first, without the foreign key from source_file_id to the ledger
-- (see 003_snapshot_key.postgresql.sql for why). SQLite cannot
-- change a primary key in place, so the table is rebuilt: new table, copy, drop, rename
-- (https://www.sqlite.org/lang_altertable.html#otheralter). Dropping the old table drops
-- its two secondary indexes with it. Nothing references market_snapshots.

-- The columns of 001_ingest.sql, unchanged (liquidity_core/schema.py declares them).
CREATE TABLE market_snapshots_rekeyed (
    coin_id TEXT NOT NULL, snapshot_ts {{TS}} NOT NULL,
    coin_name TEXT NOT NULL, symbol TEXT NOT NULL, price DOUBLE PRECISION NOT NULL,
    change_1h DOUBLE PRECISION, change_24h DOUBLE PRECISION, change_7d DOUBLE PRECISION,
    volume_24h DOUBLE PRECISION NOT NULL, market_cap DOUBLE PRECISION NOT NULL,
    extras TEXT, source_file_id BIGINT NOT NULL,
    PRIMARY KEY (snapshot_ts, coin_id)
);

INSERT INTO market_snapshots_rekeyed (coin_id, snapshot_ts, coin_name, symbol, price,
    change_1h, change_24h, change_7d, volume_24h, market_cap, extras, source_file_id)
SELECT coin_id, snapshot_ts, coin_name, symbol, price, change_1h, change_24h, change_7d,
       volume_24h, market_cap, extras, source_file_id
FROM market_snapshots
ORDER BY snapshot_ts, coin_id;

DROP TABLE market_snapshots;

ALTER TABLE market_snapshots_rekeyed RENAME TO market_snapshots;
