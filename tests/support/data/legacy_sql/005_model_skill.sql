-- Honest evaluation of each training run (issue 13): the share of holdout snapshots at
-- which the model's squared error is below persistence's, and the skill and R² of the
-- model at every holdout snapshot (JSON: ISO time -> {"n", "skill", "r2",
-- "persistence_r2"}). Rows written before this migration have NULL in both.

ALTER TABLE model_versions ADD COLUMN snapshots_beating_persistence DOUBLE PRECISION;

ALTER TABLE model_versions ADD COLUMN holdout_skill_by_snapshot TEXT;
