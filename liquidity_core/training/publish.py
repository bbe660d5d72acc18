"""Training stage 4: record the run and, on promotion, switch the champion.

:func:`publish_result` writes the version folder, the ``model_versions`` row (every run)
and, on promotion, the ``current.json`` switch, through
:func:`liquidity_core.registry.champion.publish`. Training only publishes: the new
champion's forecasts are the forecast step's job (the forecast DAG runs on the
``champion_model`` Asset; on the command line, ``liquidity forecast``).
"""

from __future__ import annotations

import shutil

from liquidity_core.errors import ModelError, NotFound
from liquidity_core.registry import champion as registry
from liquidity_core.registry.versions import store_drift_reference
from liquidity_core.settings import Settings
from liquidity_core.store import db
from liquidity_core.store.schema import model_versions
from liquidity_core.training.staging import DRIFT_FILE, MODEL_FILE, read_json, staging_dir

_RESULT_KEYS = (
    "version",
    "status",
    "holdout_r2",
    "holdout_skill",
    "snapshots_beating_persistence",
    "holdout_coverage",
    "holdout_coverage_by_tercile",
    "champion_version",
    "champion_holdout_r2",
    "persistence_r2",
    "recent_mean_r2",
    "cv_r2_mean",
    "cv_r2_std",
    "n_train_rows",
    "n_holdout_rows",
    "artifact_path",
    "artifact_sha256",
    "artifact_bytes",
    "train_seconds",
    "reason",
    "run_id",
    "data_window_start",
    "data_window_end",
    "holdout_start",
    "holdout_end",
)


def _result(row: dict) -> dict:
    out = {k: row.get(k) for k in _RESULT_KEYS}
    # Promotion is carried by the recorded status, never read from the reason's text: a
    # version that was ever champion is ``champion`` or ``retired``; a rejected challenger
    # stays ``rejected`` (rollback only restores earlier champions).
    out["promoted"] = row.get("status") in ("champion", "retired")
    params = row.get("params") or {}
    # Which form CV chose: the HAR base plus this share of the forest's change, and by
    # how much it beat the base alone and the whole forest in CV.
    out["model_form"] = {
        "blend_weight": params.get("blend_weight", 1.0),
        "cv_r2_by_blend": params.get("cv_r2_by_blend"),
    }
    out["candidates"] = {
        name: {k: v for k, v in c.items() if k in ("cv_r2_mean", "holdout_r2", "error")}
        for name, c in (row.get("candidates") or {}).items()
    }
    return out


#: ``model_versions`` columns filled in by the decision, the run and
#: :func:`liquidity_core.registry.champion.publish` (the artifact and the status), not by
#: ``challenger.json``.
_NOT_STAGED = (
    "created_at",
    "champion_version",
    "champion_holdout_r2",
    "reason",
    "run_id",
    "artifact_path",
    "artifact_sha256",
    "artifact_bytes",
    "status",
)


def version_row(challenger: dict, decision: dict, run_id: str) -> dict:
    """The ``model_versions`` row of a staged run, but the artifact and the status.

    The NOT NULL columns must be in ``challenger.json``; the others may be absent (runs
    staged before migrations 005/006) and are then NULL.
    """
    row = {
        c.name: challenger.get(c.name) if c.nullable else challenger[c.name]
        for c in model_versions.columns
        if c.name not in _NOT_STAGED
    }
    row.update(
        created_at=registry.utc_now_iso(),
        champion_version=decision["champion_version"],
        champion_holdout_r2=decision["champion_holdout_r2"],
        reason=decision["reason"],
        run_id=run_id,
    )
    return row


def publish_result(settings: Settings, *, run_id: str) -> dict:
    """Stage 4: write the version folder, record the run, switch the pointer on promotion.

    Safe to re-run: a run id whose version is already recorded returns that record.

    Returns
    -------
    dict
        version, promoted, status, holdout_r2, champion_holdout_r2, persistence_r2,
        reason, ... (see :func:`run_training_cycle`).
    """
    stage = staging_dir(settings, run_id)
    engine = db.get_engine(settings.database_url)
    if not (stage / "challenger.json").exists():
        # A retry after the version was recorded and the staging folder removed.
        done = registry.versions_of_run(engine, run_id)
        if done:
            return _result(done[0])
    challenger = read_json(stage / "challenger.json")
    decision = read_json(stage / "decision.json")
    version = challenger["version"]
    try:
        existing = registry.get_version(engine, version)
    except NotFound:
        existing = None
    if existing is not None:
        shutil.rmtree(stage, ignore_errors=True)
        return _result(existing)
    model_file = stage / MODEL_FILE
    if registry.sha256_file(model_file) != challenger["model_sha256"]:
        raise ModelError(
            f"staged model {model_file} changed since it was scored (sha256 mismatch); "
            "not publishing it"
        )
    row = version_row(challenger, decision, run_id)
    metadata = dict(row, status="champion" if decision["promote"] else "rejected")
    recorded = registry.publish(
        settings,
        row=row,
        model_file=model_file,
        metadata=metadata,
        promote=decision["promote"],
    )
    if (stage / DRIFT_FILE).exists():
        store_drift_reference(engine, version, read_json(stage / DRIFT_FILE))
    shutil.rmtree(stage, ignore_errors=True)
    return _result(recorded)
