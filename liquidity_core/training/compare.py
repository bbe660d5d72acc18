"""Training stage 3: re-score the champion on the challenger's holdout and decide.

:func:`compare_with_champion` writes ``decision.json`` (promote or not, and why) to the
run's staging folder. It records nothing in the registry, even when the champion cannot
be re-scored: it then decides "not promoted" and raises, and the cycle
(:func:`.train.compare_or_reject`) has the publish stage record that.
"""

from __future__ import annotations

import logging

import pandas as pd

from liquidity_core.errors import ModelError
from liquidity_core.learn.metrics import fmt, r2
from liquidity_core.registry import champion as registry
from liquidity_core.settings import Settings
from liquidity_core.store import db
from liquidity_core.training.staging import load_stage_data, read_json, staging_dir, write_json

#: The training stages log as one logger, the cycle's, so that one switch (tests,
#: bench/retrain.py) follows a whole run.
log = logging.getLogger("liquidity_core.training.cycle")


def score_model_on(loaded: registry.LoadedModel, X: pd.DataFrame, y) -> float | None:
    """Holdout R² of a loaded model on rows ``X`` (columns aligned to its features)."""
    cols = loaded.feature_names
    return r2(y, loaded.pipeline.predict(X.reindex(columns=cols)))


def compare_with_champion(settings: Settings, *, run_id: str, promote: bool = True) -> dict:
    """Stage 3: score the champion on the challenger's holdout and decide.

    The challenger is promoted when its holdout R² beats the champion's by more than
    ``settings.promotion_margin`` and beats persistence; the first model only has to
    beat persistence.

    Returns
    -------
    dict
        The decision: promote, reason, champion_version, champion_holdout_r2.

    Raises
    ------
    ModelError
        When the champion's artifact fails verification or scoring. ``decision.json``
        then says the challenger is not promoted and why; recording it is the publish
        stage's job (:func:`.train.compare_or_reject` runs it before failing).
    """
    stage = staging_dir(settings, run_id)
    challenger = read_json(stage / "challenger.json")
    engine = db.get_engine(settings.database_url)
    champion = registry.get_champion(engine)
    r2, p_r2 = challenger["holdout_r2"], challenger["persistence_r2"]
    margin = settings.promotion_margin
    decision = {"champion_version": None, "champion_holdout_r2": None}
    if champion is None:
        ok = r2 is not None and p_r2 is not None and r2 > p_r2
        verdict = (
            f"first model: holdout R² {fmt(r2)} {'beats' if ok else 'does not beat'} "
            f"persistence {fmt(p_r2)}"
        )
    else:
        decision["champion_version"] = champion["version"]
        data = load_stage_data(stage)
        X_hold = data["X"].iloc[data["holdout"]]
        y_hold = data["y"].to_numpy()[data["holdout"]]
        try:
            loaded = registry.load_verified_model(settings, champion["version"])
            c_r2 = score_model_on(loaded, X_hold, y_hold)
        except ModelError as exc:
            reason = (
                f"not promoted: champion {champion['version']} could not be re-scored, "
                f"so it is kept: {exc}"
            )
            write_json(stage / "decision.json", dict(decision, promote=False, reason=reason))
            raise ModelError(f"champion {champion['version']} failed verification: {exc}") from None
        decision["champion_holdout_r2"] = c_r2
        beats_champion = r2 is not None and (c_r2 is None or r2 > c_r2 + margin)
        beats_persistence = r2 is not None and p_r2 is not None and r2 > p_r2
        ok = beats_champion and beats_persistence
        parts = [
            f"holdout R² {fmt(r2)} {'beats' if beats_champion else 'does not beat'} "
            f"champion {champion['version']} ({fmt(c_r2)}) by more than margin {margin:g}",
            f"{'beats' if beats_persistence else 'does not beat'} persistence {fmt(p_r2)}",
        ]
        verdict = "; ".join(parts)
        if champion["data_fingerprint"] == challenger["data_fingerprint"]:
            verdict += "; no new data since the champion was trained"
    if not promote:
        reason = f"not promoted (promotion disabled): {verdict}"
        ok = False
    else:
        reason = f"{'promoted' if ok else 'not promoted'}: {verdict}"
    decision.update(promote=bool(ok), reason=reason)
    write_json(stage / "decision.json", decision)
    log.info("decision for %s: %s", challenger["version"], reason)
    return decision
