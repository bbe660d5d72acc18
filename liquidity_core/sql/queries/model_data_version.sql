-- The store's data version for the prediction history cache. Every ingest that writes
-- snapshots inserts its ledger row in the same transaction, and ledger rows are never
-- deleted, so the count grows with every committed change. (MAX(id) would not do:
-- identities are handed out at insert, so a slow ingest can commit an id below one
-- already seen.)
SELECT (SELECT COUNT(*) FROM ingest_files) AS files,
       (SELECT MAX(snapshot_ts) FROM market_snapshots) AS newest
