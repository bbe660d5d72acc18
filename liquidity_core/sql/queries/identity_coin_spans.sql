-- One row per stored name slug: its first and last snapshot, with the (normalised)
-- symbol and market cap at each end. One grouped pass over market_snapshots plus two
-- key lookups per coin; the input of liquidity_core.identity.recompute.
WITH spans AS (
    SELECT coin_id, MIN(snapshot_ts) AS first_ts, MAX(snapshot_ts) AS last_ts
    FROM market_snapshots
    GROUP BY coin_id
)
SELECT sp.coin_id, sp.first_ts, sp.last_ts,
       UPPER(TRIM(f.symbol)) AS first_symbol, f.market_cap AS first_cap,
       UPPER(TRIM(l.symbol)) AS last_symbol, l.market_cap AS last_cap
FROM spans sp
JOIN market_snapshots f ON f.snapshot_ts = sp.first_ts AND f.coin_id = sp.coin_id
JOIN market_snapshots l ON l.snapshot_ts = sp.last_ts AND l.coin_id = sp.coin_id
