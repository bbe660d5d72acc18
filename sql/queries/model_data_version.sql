-- The store's data version for the prediction history cache: it changes whenever an
-- ingest records a file (every write to market_snapshots comes with a ledger row).
SELECT (SELECT MAX(id) FROM ingest_files) AS last_file,
       (SELECT MAX(snapshot_ts) FROM market_snapshots) AS newest
