-- The stored training-window reference of a model version (drift).
SELECT reference FROM drift_references WHERE model_version = :model_version
