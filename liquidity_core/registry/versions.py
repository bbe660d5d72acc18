"""The ``model_versions`` history and the ``model_events`` log in the database.

``model_versions`` has one row per training run (status ``champion`` / ``retired`` /
``rejected``; at most one champion, enforced by a unique index); ``model_events`` logs
each promotion, retirement, rejection and rollback. Rows come back as dicts with the JSON
columns decoded and the timestamps as ISO text.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import sqlalchemy as sa

from liquidity_core.errors import NotFound
from liquidity_core.store import db
from liquidity_core.store.schema import (
    drift_references,
    json_columns,
    model_events,
    model_versions,
    time_columns,
)

log = logging.getLogger(__name__)


_versions, _events = model_versions, model_events
#: model_versions columns stored as JSON text, and its times.
JSON_COLUMNS = json_columns(model_versions)
TS_COLUMNS = time_columns(model_versions)

#: The champion's row (at most one: a partial unique index).
CHAMPION = sa.select(_versions).where(_versions.c.status == "champion")


def utc_now_iso() -> str:
    """Now, UTC, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return str(value)


def _decode_row(row) -> dict:
    out = dict(row._mapping)
    for col in JSON_COLUMNS:
        if out.get(col) is not None:
            out[col] = json.loads(out[col])
    for col in TS_COLUMNS:
        if col in out:
            out[col] = _iso(out[col])
    if isinstance(out.get("artifact_sha256"), str):
        out["artifact_sha256"] = out["artifact_sha256"].strip()
    return out


def _encode_row(row: dict) -> dict:
    out = dict(row)
    for col in JSON_COLUMNS:
        if out.get(col) is not None and not isinstance(out[col], str):
            out[col] = json.dumps(out[col], sort_keys=True, default=str)
    return out


# --- database ----------------------------------------------------------------------------


def get_version(engine, version: str) -> dict:
    """The ``model_versions`` row of ``version`` (JSON columns decoded).

    Raises
    ------
    NotFound
        When there is no such version.
    """
    with db.transaction(engine, readonly=True) as conn:
        row = conn.execute(sa.select(_versions).where(_versions.c.version == version)).first()
    if row is None:
        raise NotFound(f"model version {version!r} does not exist")
    return _decode_row(row)


def versions_of_run(engine, run_id: str) -> list[dict]:
    """The versions recorded by one training run (normally one), newest first."""
    with db.transaction(engine, readonly=True) as conn:
        stmt = sa.select(_versions).where(_versions.c.run_id == run_id)
        rows = conn.execute(stmt.order_by(_versions.c.created_at.desc())).all()
    return [_decode_row(r) for r in rows]


def get_champion(engine) -> dict | None:
    """The current champion's ``model_versions`` row, or None."""
    with db.transaction(engine, readonly=True) as conn:
        row = conn.execute(CHAMPION).first()
    return _decode_row(row) if row is not None else None


def list_versions(engine) -> list[dict]:
    """Every model version, newest first (JSON columns decoded)."""
    with db.transaction(engine, readonly=True) as conn:
        newest = (_versions.c.created_at.desc(), _versions.c.version.desc())
        rows = conn.execute(sa.select(_versions).order_by(*newest)).all()
    return [_decode_row(r) for r in rows]


def list_events(engine) -> list[dict]:
    """The ``model_events`` log, newest first."""
    with db.transaction(engine) as conn:
        rows = conn.execute(sa.select(_events).order_by(_events.c.id.desc())).all()
    return [{**dict(r._mapping), "created_at": _iso(r.created_at)} for r in rows]


def record_event(conn, version: str, event: str, reason: str, run_id: str | None) -> None:
    """Log one ``model_events`` row (inside the caller's transaction)."""
    conn.execute(
        _events.insert().values(
            version=version, event=event, reason=reason, created_at=utc_now_iso(), run_id=run_id
        )
    )


def set_status(conn, version: str, status: str) -> None:
    """Set a version's ``status`` (inside the caller's transaction)."""
    conn.execute(_versions.update().where(_versions.c.version == version).values(status=status))


def champion_history(conn) -> list[str]:
    """Versions that became champion (promoted or rolled back to), the latest first."""
    became = _events.c.event.in_(("promoted", "rolled_back"))
    stmt = sa.select(_events.c.version).where(became).order_by(_events.c.id.desc())
    return list(conn.execute(stmt).scalars())


def record_version(engine, row: dict, *, promote: bool) -> str | None:
    """Insert a ``model_versions`` row; when ``promote``, make it champion.

    One transaction: the old champion (if any) is retired, the new row inserted with
    status ``champion`` and the events logged; or the row is inserted as ``rejected``.

    Returns
    -------
    str or None
        The version that was champion before (retired by this call), if any.
    """
    row = _encode_row(row)
    row["status"] = "champion" if promote else "rejected"
    retired = None
    with db.transaction(engine) as conn:
        if promote:
            old = conn.execute(CHAMPION).first()
            if old is not None:
                retired = old.version
                set_status(conn, retired, "retired")
                record_event(
                    conn, retired, "retired", f"replaced by {row['version']}", row["run_id"]
                )
        conn.execute(_versions.insert(), row)
        record_event(
            conn,
            row["version"],
            "promoted" if promote else "rejected",
            row["reason"],
            row["run_id"],
        )
    return retired


def store_drift_reference(engine, version: str, reference: dict) -> None:
    """Record ``version``'s drift reference, the feature distributions of the rows it was
    fitted on (:func:`liquidity_core.learn.psi.reference_of_rows`); once: a second call
    stores nothing."""
    with db.transaction(engine) as conn:
        conn.execute(
            db.insert_once(conn, drift_references),
            {
                "model_version": version,
                "reference": json.dumps(reference),
                "created_at": utc_now_iso(),
            },
        )
