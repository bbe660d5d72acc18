-- Snapshots keyed time first: PRIMARY KEY (snapshot_ts, coin_id) replaces
-- (coin_id, snapshot_ts) and the two secondary indexes.
-- Every read of market_snapshots selects by time (a snapshot, a recent window, a range
-- for overlap checks, or everything for training), so the time-first key serves them
-- all, and a drop of new snapshots appends at the right edge of one index instead of
-- updating three. ON CONFLICT (coin_id, snapshot_ts) still names this key (same columns).

DROP INDEX IF EXISTS market_snapshots_ts;

DROP INDEX IF EXISTS market_snapshots_symbol;

ALTER TABLE market_snapshots DROP CONSTRAINT market_snapshots_pkey;

ALTER TABLE market_snapshots ADD CONSTRAINT market_snapshots_pkey
    PRIMARY KEY (snapshot_ts, coin_id);
