"""Training stage 3: compare the challenger with the champion on rows neither saw, decide.

The challenger never saw its holdout. The champion may have: after a refit it was fitted
on every row up to its own data window's end, and a run with ``--until`` or a larger
``LIQUIDITY_HOLDOUT_SNAPSHOTS`` can put a holdout inside that window. So the champion is
judged, in this order of preference, by:

1. its **stored forecasts** of the holdout rows: made by the forecast step before the
   outcomes existed, they are out of sample whatever it was fitted on;
2. a **re-score** of its verified artifact on the holdout rows after its data window
   (``fitted_through`` in its params; for a version without it, its holdout start);
3. nothing: the comparison is **refused**, the challenger not promoted, and the reason
   recorded.

The challenger is scored on the same rows as the champion. :func:`compare_with_champion`
writes ``decision.json`` (promote or not, and why) to the run's staging folder. It records
nothing in the registry, even when the champion cannot be verified: it then decides "not
promoted" and raises, and the cycle (:func:`.cycle.compare_or_reject`) has the publish
stage record that.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import sqlalchemy as sa

from liquidity_core.errors import ModelError
from liquidity_core.learn.metrics import fmt, r2
from liquidity_core.registry import champion as registry
from liquidity_core.settings import Settings
from liquidity_core.store import db
from liquidity_core.store.schema import forecasts
from liquidity_core.store.snapshots import stored_time, to_utc
from liquidity_core.training.staging import (
    HOLDOUT_PREDICTIONS,
    load_stage_data,
    read_json,
    staging_dir,
    write_json,
)

#: The training stages log as one logger, the cycle's, so that one switch (tests,
#: bench/retrain.py) follows a whole run.
log = logging.getLogger("liquidity_core.training.cycle")


def compare_with_champion(settings: Settings, *, run_id: str, promote: bool = True) -> dict:
    """Stage 3: judge the champion on holdout rows it never saw (:func:`judge_champion`)
    and decide.

    The challenger is promoted when its R² beats the champion's on the same unseen rows
    by more than ``settings.promotion_margin`` and its holdout R² beats persistence's;
    the first model only has to beat persistence.

    Returns
    -------
    dict
        The decision: promote, reason, champion_version, champion_holdout_r2, and how
        the champion was judged (comparison: "stored forecasts", "re-score after its
        window" or "refused"; comparison_rows; challenger_r2_on_comparison).

    Raises
    ------
    ModelError
        When the champion's artifact fails verification or scoring. ``decision.json``
        then says the challenger is not promoted and why; recording it is the publish
        stage's job (:func:`.cycle.compare_or_reject` runs it before failing).
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
        try:
            loaded = registry.load_verified_model(settings, champion["version"])
            judged = judge_champion(engine, loaded, stage)
        except ModelError as exc:
            reason = (
                f"not promoted: champion {champion['version']} could not be re-scored, "
                f"so it is kept: {exc}"
            )
            write_json(stage / "decision.json", dict(decision, promote=False, reason=reason))
            raise ModelError(f"champion {champion['version']} failed verification: {exc}") from None
        decision.update(
            champion_holdout_r2=judged["champion_r2"],
            comparison=judged["how"],
            comparison_rows=judged["rows"],
            challenger_r2_on_comparison=judged["challenger_r2"],
        )
        beats_persistence = r2 is not None and p_r2 is not None and r2 > p_r2
        if judged["how"] == "refused":
            ok = False
            verdict = f"comparison with champion {champion['version']} refused: {judged['why']}"
        else:
            ch, c_r2 = judged["challenger_r2"], judged["champion_r2"]
            beats_champion = ch is not None and (c_r2 is None or ch > c_r2 + margin)
            ok = beats_champion and beats_persistence
            verdict = (
                f"on {judged['rows']} holdout rows scored by the champion's {judged['how']}, "
                f"R² {fmt(ch)} {'beats' if beats_champion else 'does not beat'} champion "
                f"{champion['version']} ({fmt(c_r2)}) by more than margin {margin:g}"
            )
        verdict += (
            f"; holdout R² {fmt(r2)} {'beats' if beats_persistence else 'does not beat'} "
            f"persistence {fmt(p_r2)}"
        )
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


#: The champion's stored forecasts of a span of snapshot times.
_STORED = sa.select(
    forecasts.c.coin_id, forecasts.c.snapshot_ts, forecasts.c.predicted_log_turnover
).where(
    forecasts.c.model_version == sa.bindparam("version"),
    forecasts.c.snapshot_ts >= sa.bindparam("start"),
    forecasts.c.snapshot_ts <= sa.bindparam("end"),
)


def fitted_through(version_row: dict) -> pd.Timestamp | None:
    """The newest snapshot time among the rows a version was fitted on: its rows after
    this time are out of sample. Older versions, fitted on their tuning rows only, say
    nothing; their holdout start bounds it from above."""
    params = version_row.get("params") or {}
    if params.get("fitted_through"):
        return to_utc(params["fitted_through"])
    start = version_row.get("holdout_start")
    return None if start is None else to_utc(start) - pd.Timedelta(1, "ns")


def judge_champion(engine, loaded: registry.LoadedModel, stage) -> dict:
    """The champion's and the challenger's R² on the holdout rows the champion never saw.

    Returns
    -------
    dict
        how ("stored forecasts", "re-score after its window" or "refused"), rows,
        champion_r2, challenger_r2, and why (when refused).
    """
    data = load_stage_data(stage)
    hold = data["holdout"]
    X_hold, y_hold = data["X"].iloc[hold], data["y"].to_numpy()[hold]
    meta = data["meta"].iloc[hold].reset_index(drop=True)
    mine = np.load(stage / HOLDOUT_PREDICTIONS)
    times = pd.to_datetime(meta["snapshot_ts"], utc=True)
    stored = _stored_forecasts(engine, loaded.version, times.min(), times.max())
    if len(stored):
        key = pd.MultiIndex.from_arrays([meta["coin_id"], times])
        theirs = stored.reindex(key).to_numpy()
        seen = np.isfinite(theirs)
        if seen.any():
            return _scores("stored forecasts", y_hold[seen], mine[seen], theirs[seen])
    through = fitted_through(loaded.metadata)
    after = (times > through).to_numpy() if through is not None else np.zeros(len(times), bool)
    if after.any():
        theirs = loaded.pipeline.predict(X_hold[after].reindex(columns=loaded.feature_names))
        return _scores("re-score after its window", y_hold[after], mine[after], theirs)
    return {
        "how": "refused",
        "rows": 0,
        "champion_r2": None,
        "challenger_r2": None,
        "why": (
            f"the champion stored no forecast of the holdout ({times.min().isoformat()} to "
            f"{times.max().isoformat()}) and was fitted on rows up to "
            f"{through.isoformat() if through is not None else 'an unknown time'}, so every "
            "holdout row would score it in sample"
        ),
    }


def _scores(how: str, y, mine, theirs) -> dict:
    return {
        "how": how,
        "rows": int(len(y)),
        "champion_r2": r2(y, theirs),
        "challenger_r2": r2(y, mine),
    }


def _stored_forecasts(engine, version: str, start, end) -> pd.Series:
    """The champion's stored point forecasts, indexed by (coin_id, snapshot_ts)."""
    with engine.connect() as conn:
        result = conn.execute(
            _STORED,
            {
                "version": version,
                "start": stored_time(start, conn.dialect.name),
                "end": stored_time(end, conn.dialect.name),
            },
        )
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    if frame.empty:
        return pd.Series(dtype=float)
    frame["snapshot_ts"] = pd.to_datetime(frame["snapshot_ts"], utc=True, format="ISO8601")
    return frame.set_index(["coin_id", "snapshot_ts"])["predicted_log_turnover"].astype(float)
