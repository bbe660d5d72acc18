-- (snapshot time, symbol) pairs held by more than one coin: a ticker shared there makes
-- a rename at that time ambiguous.
SELECT snapshot_ts, UPPER(TRIM(symbol)) AS symbol, COUNT(*) AS n
FROM market_snapshots
GROUP BY snapshot_ts, UPPER(TRIM(symbol))
HAVING COUNT(*) > 1
