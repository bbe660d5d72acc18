"""Realized accuracy of the stored forecasts, per model version and target snapshot, and alerts.

An outcome is a stored forecast joined with what then happened: the coin's log turnover
at the snapshot that came next (the ``forecast_outcomes`` view). On the outcomes of each
model version, pooled and per target snapshot:

- ``realized_r2``: R² of the forecast; ``persistence_r2``: R² of persistence (next =
  current log turnover) on the same rows;
- ``skill``: ``1 - MSE(forecast) / MSE(persistence)`` on the same rows (above 0: better
  than persistence);
- ``mae``: mean absolute error (log turnover);
- ``coverage``: share of realized values inside the stored interval, beside its
  ``nominal_coverage``; ``mean_width``: mean interval width (log turnover).

Every stored forecast was made by a version on a snapshot it did not learn from
(:mod:`.forecasts`), so these numbers are out of sample.

Alert (:func:`alert_reasons`): over the champion's last :data:`ALERT_SNAPSHOTS` target
snapshots, its skill is below 0 (worse than persistence), or its coverage is more than
:data:`COVERAGE_TOLERANCE` from nominal. :func:`check` raises :class:`MonitoringAlert`
naming the numbers; the forecast DAG's monitor task calls it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from liquidity_core.errors import MonitoringAlert
from liquidity_core.features.series import log_turnover
from liquidity_core.learn.metrics import mse, r2
from liquidity_core.settings import Settings
from liquidity_core.store import db
from liquidity_core.store.schema import forecast_outcomes, forecasts
from liquidity_core.store.snapshots import to_utc

#: Target snapshots in the alert window.
ALERT_SNAPSHOTS = 3
#: Largest distance of realized coverage from nominal before an alert (10 points).
COVERAGE_TOLERANCE = 0.10

_o = forecast_outcomes
#: Every stored forecast whose target snapshot has arrived, with the realized values.
_OUTCOMES = sa.select(*(c for c in _o.c if c.name not in ("expected_ts", "level"))).order_by(
    _o.c.model_version, _o.c.snapshot_ts, _o.c.coin_id
)
_f = forecasts
#: Model versions with stored forecasts: how many rows and snapshot times each.
_VERSIONS = sa.select(
    _f.c.model_version,
    sa.func.count().label("n_forecasts"),
    sa.func.count(sa.distinct(_f.c.snapshot_ts)).label("n_times"),
    sa.func.max(_f.c.snapshot_ts).label("newest"),
).group_by(_f.c.model_version)


def outcomes(engine) -> pd.DataFrame:
    """Stored forecasts whose target has arrived, with ``actual`` (realized log turnover).

    Columns: ``model_version``, ``coin_id``, ``snapshot_ts``, ``target_ts``,
    ``predicted``, ``low``, ``high``, ``nominal``, ``persistence``, ``actual``; rows
    without a finite actual or persistence value are left out.
    """
    with db.transaction(engine, readonly=True) as conn:
        result = conn.execute(_OUTCOMES)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    if frame.empty:
        return pd.DataFrame(
            columns=[
                "model_version",
                "coin_id",
                "snapshot_ts",
                "target_ts",
                "predicted",
                "low",
                "high",
                "nominal",
                "persistence",
                "actual",
            ]
        )
    out = pd.DataFrame(
        {
            "model_version": frame["model_version"].astype(str),
            "coin_id": frame["coin_id"].astype(str),
            "snapshot_ts": pd.to_datetime(frame["snapshot_ts"], utc=True, format="ISO8601"),
            "target_ts": pd.to_datetime(frame["target_ts"], utc=True, format="ISO8601"),
            "predicted": frame["predicted_log_turnover"].astype(float),
            "low": frame["lower_log_turnover"].astype(float),
            "high": frame["upper_log_turnover"].astype(float),
            "nominal": frame["nominal_level"].astype(float),
            "persistence": pd.to_numeric(frame["current_log_turnover"]).astype(float),
            "actual": log_turnover(frame["realized_volume_24h"], frame["realized_market_cap"]),
        }
    )
    ok = np.isfinite(out["actual"]) & np.isfinite(out["persistence"])
    return out[ok.to_numpy()].reset_index(drop=True)


def scores(rows: pd.DataFrame) -> dict:
    """The realized scores of some outcome rows (see the module docstring)."""
    y = rows["actual"].to_numpy(dtype=float)
    pred = rows["predicted"].to_numpy(dtype=float)
    pers = rows["persistence"].to_numpy(dtype=float)
    n = len(y)
    if n == 0:
        keys = ("realized_r2", "persistence_r2", "skill", "mae", "coverage", "mean_width")
        return {"rows": 0, **dict.fromkeys(keys), "nominal_coverage": None}
    base = mse(y, pers)
    inside = (y >= rows["low"].to_numpy()) & (y <= rows["high"].to_numpy())
    return {
        "rows": n,
        "realized_r2": r2(y, pred),
        "persistence_r2": r2(y, pers),
        "skill": None if base == 0 else 1.0 - mse(y, pred) / base,
        "mae": float(np.mean(np.abs(y - pred))),
        "coverage": float(inside.mean()),
        "nominal_coverage": float(rows["nominal"].mean()),
        "mean_width": float(np.mean(rows["high"].to_numpy() - rows["low"].to_numpy())),
    }


def version_report(rows: pd.DataFrame) -> dict:
    """Pooled scores of one version's outcomes, per target snapshot, and over the last
    :data:`ALERT_SNAPSHOTS` target snapshots (``recent``)."""
    per = []
    for ts, idx in rows.groupby("target_ts").indices.items():
        per.append({"target_ts": to_utc(ts).isoformat(), **scores(rows.iloc[idx])})
    recent_times = sorted(rows["target_ts"].unique())[-ALERT_SNAPSHOTS:]
    recent = rows[rows["target_ts"].isin(recent_times)]
    return {
        "snapshots": len(per),
        **scores(rows),
        "per_snapshot": per,
        "recent": {
            "snapshots": len(recent_times),
            "first": to_utc(recent_times[0]).isoformat() if recent_times else None,
            "last": to_utc(recent_times[-1]).isoformat() if recent_times else None,
            **scores(recent),
        },
    }


def monitor(settings: Settings) -> dict:
    """Realized accuracy and coverage of every model version that stored forecasts.

    Returns
    -------
    dict
        ``champion`` (version or None); ``versions``: newest version first, each with
        ``version``, ``status``, ``holdout_r2``, ``holdout_coverage``, ``forecasts``
        (rows stored), ``snapshots`` (target snapshots with outcomes), ``rows``
        (outcomes), ``realized_r2``, ``persistence_r2``, ``skill``, ``mae``,
        ``coverage``, ``nominal_coverage``, ``mean_width``, ``per_snapshot`` (the same
        per target snapshot) and ``recent`` (over the last 3); ``alerts``: the reasons
        of :func:`alert_reasons` (empty when all is well); ``drift``: the newest stored
        drift (:func:`liquidity_core.monitoring.drift.latest_drift`).
    """
    from liquidity_core.monitoring.drift import latest_drift
    from liquidity_core.registry.champion import list_versions

    engine = db.get_engine(settings.database_url)
    db.require_schema(engine)
    with db.transaction(engine, readonly=True) as conn:
        stored = {r.model_version: r for r in conn.execute(_VERSIONS)}
    rows = outcomes(engine)
    versions = []
    champion = None
    for v in list_versions(engine):
        if v["status"] == "champion":
            champion = v["version"]
        if v["version"] not in stored:
            continue
        mine = rows[rows["model_version"] == v["version"]].reset_index(drop=True)
        versions.append(
            {
                "version": v["version"],
                "status": v["status"],
                "created_at": v["created_at"],
                "holdout_r2": v.get("holdout_r2"),
                "holdout_coverage": v.get("holdout_coverage"),
                "forecasts": int(stored[v["version"]].n_forecasts),
                **version_report(mine),
            }
        )
    report = {"champion": champion, "versions": versions}
    report["alerts"] = alert_reasons(report)
    report["drift"] = latest_drift(engine)
    return report


def alert_reasons(report: dict) -> list[str]:
    """Why the champion's recent realized numbers call for attention (empty: they don't).

    Looks at the champion's last :data:`ALERT_SNAPSHOTS` target snapshots, once it has
    that many: skill below 0, or coverage outside nominal ± :data:`COVERAGE_TOLERANCE`.
    """
    champion = next((v for v in report["versions"] if v["version"] == report["champion"]), None)
    if champion is None or champion["recent"]["snapshots"] < ALERT_SNAPSHOTS:
        return []
    recent = champion["recent"]
    window = (
        f"over its last {recent['snapshots']} scored snapshots "
        f"({recent['first'][:19]} .. {recent['last'][:19]}, {recent['rows']} forecasts)"
    )
    reasons = []
    if recent["skill"] is not None and recent["skill"] < 0:
        reasons.append(
            f"champion {champion['version']}: realized skill {window} is "
            f"{recent['skill']:.3f} < 0, worse than persistence (R² {_f(recent['realized_r2'])}"
            f" vs persistence {_f(recent['persistence_r2'])})"
        )
    nominal, coverage = recent["nominal_coverage"], recent["coverage"]
    if coverage is not None and abs(coverage - nominal) > COVERAGE_TOLERANCE + 1e-12:
        reasons.append(
            f"champion {champion['version']}: interval coverage {window} is "
            f"{coverage:.1%}, outside the nominal {nominal:.0%} ± "
            f"{COVERAGE_TOLERANCE * 100:.0f} points ({nominal - COVERAGE_TOLERANCE:.0%}"
            f"-{nominal + COVERAGE_TOLERANCE:.0%})"
        )
    return reasons


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def check(settings: Settings) -> dict:
    """:func:`monitor`, raising :class:`MonitoringAlert` when an alert fires.

    Returns
    -------
    dict
        A summary of the report: ``champion``, ``versions`` (count), ``alerts`` (empty).

    Raises
    ------
    MonitoringAlert
        With every reason of :func:`alert_reasons`, joined by ``"; "``.
    """
    report = monitor(settings)
    if report["alerts"]:
        raise MonitoringAlert("; ".join(report["alerts"]))
    return {"champion": report["champion"], "versions": len(report["versions"]), "alerts": []}


def alert_reason(settings: Settings) -> str | None:
    """The alert's reasons joined by ``"; "``, or None when no alert fires."""
    reasons = monitor(settings)["alerts"]
    return "; ".join(reasons) if reasons else None


def with_realized(versions: list[dict], report: dict) -> list[dict]:
    """``model_versions`` rows with ``realized_skill`` and ``realized_coverage`` added from
    a :func:`monitor` report, for the history tables (None where a version has no outcomes)."""
    by = {v["version"]: v for v in report["versions"] if v["rows"]}
    return [
        dict(
            row,
            realized_skill=by.get(row["version"], {}).get("skill"),
            realized_coverage=by.get(row["version"], {}).get("coverage"),
        )
        for row in versions
    ]


def history_with_realized(settings: Settings) -> list[dict]:
    """:func:`~liquidity_core.registry.champion.list_versions` with each version's realized
    skill and coverage (:func:`with_realized`): the rows of the "Model history" view."""
    from liquidity_core.registry.champion import list_versions

    versions = list_versions(db.get_engine(settings.database_url))
    return with_realized(versions, monitor(settings))
