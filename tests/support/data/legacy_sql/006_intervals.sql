-- Calibrated forecast intervals (issue 14): the split-conformal calibration of each model
-- version (JSON: market-cap tercile edges and residual quantiles, see
-- liquidity_core/model/intervals.py) and the coverage that its nominal interval reached
-- on the holdout, overall and per market-cap tercile (JSON list of three). Rows written
-- before this migration have NULL: their interval is the trees' spread.

ALTER TABLE model_versions ADD COLUMN interval_calibration TEXT;

ALTER TABLE model_versions ADD COLUMN holdout_coverage DOUBLE PRECISION;

ALTER TABLE model_versions ADD COLUMN holdout_coverage_by_tercile TEXT;
