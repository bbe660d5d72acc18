-- Exact totals for the report over every stored snapshot: coins, and per numeric column
-- the values present, minimum and maximum (turnover = volume / market cap, when positive).
SELECT COUNT(DISTINCT coin_id) AS n_coins,
       COUNT(price) AS n_price, MIN(price) AS min_price, MAX(price) AS max_price,
       COUNT(change_1h) AS n_change_1h, MIN(change_1h) AS min_change_1h,
       MAX(change_1h) AS max_change_1h,
       COUNT(change_24h) AS n_change_24h, MIN(change_24h) AS min_change_24h,
       MAX(change_24h) AS max_change_24h,
       COUNT(change_7d) AS n_change_7d, MIN(change_7d) AS min_change_7d,
       MAX(change_7d) AS max_change_7d,
       COUNT(volume_24h) AS n_volume_24h, MIN(volume_24h) AS min_volume_24h,
       MAX(volume_24h) AS max_volume_24h,
       COUNT(market_cap) AS n_market_cap, MIN(market_cap) AS min_market_cap,
       MAX(market_cap) AS max_market_cap,
       COUNT(CASE WHEN market_cap > 0 THEN 1 END) AS n_turnover,
       MIN(CASE WHEN market_cap > 0 THEN volume_24h / market_cap END) AS min_turnover,
       MAX(CASE WHEN market_cap > 0 THEN volume_24h / market_cap END) AS max_turnover
FROM coin_snapshots
