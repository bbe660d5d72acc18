-- PostgreSQL: a per-transaction staging table that COPY fills.
CREATE TEMP TABLE ingest_stage (
    coin_id TEXT, snapshot_ts TIMESTAMPTZ, coin_name TEXT, symbol TEXT,
    price DOUBLE PRECISION, change_1h DOUBLE PRECISION, change_24h DOUBLE PRECISION,
    change_7d DOUBLE PRECISION, volume_24h DOUBLE PRECISION, market_cap DOUBLE PRECISION,
    extras TEXT
) ON COMMIT DROP
