-- PostgreSQL: the staging table of a file loaded in pieces, with each row's line number
-- so that a (coin, time) repeated across pieces can be rejected as in one piece.
CREATE TEMP TABLE ingest_stage (
    coin_id TEXT, snapshot_ts TIMESTAMPTZ, coin_name TEXT, symbol TEXT,
    price DOUBLE PRECISION, change_1h DOUBLE PRECISION, change_24h DOUBLE PRECISION,
    change_7d DOUBLE PRECISION, volume_24h DOUBLE PRECISION, market_cap DOUBLE PRECISION,
    extras TEXT, line BIGINT
) ON COMMIT DROP
