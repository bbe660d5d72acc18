-- Coin identity across renames (issue #13). market_snapshots.coin_id stays the slug of
-- the name as read; coin_aliases maps a later name's slug (alias_id) to the coin it
-- continues (coin_id, the root of a chain of renames). It is derived data: after every
-- load, liquidity_core.identity.recompute rebuilds it from the stored
-- (coin_id, symbol, snapshot_ts, market_cap), so the order files arrive in cannot matter.
-- Every reader goes through the view coin_snapshots, which applies the mapping.

CREATE TABLE IF NOT EXISTS coin_aliases (
    alias_id TEXT PRIMARY KEY,
    coin_id TEXT NOT NULL,
    previous_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    previous_last_ts {{TS}} NOT NULL,
    alias_first_ts {{TS}} NOT NULL,
    cap_ratio DOUBLE PRECISION NOT NULL,
    decided_at {{TS}} NOT NULL
);

CREATE VIEW coin_snapshots AS
SELECT COALESCE(a.coin_id, s.coin_id) AS coin_id, s.coin_id AS name_id, s.snapshot_ts,
       s.coin_name, s.symbol, s.price, s.change_1h, s.change_24h, s.change_7d,
       s.volume_24h, s.market_cap, s.extras, s.source_file_id
FROM market_snapshots s
LEFT JOIN coin_aliases a ON a.alias_id = s.coin_id;
