"""The model registry: version folders, the ``model_versions`` history, ``current.json``.

Layout of ``MODEL_DIR``::

    versions/<version>/model.pkl       the fitted Pipeline, exactly as scored
    versions/<version>/metadata.json   what the model_versions row says, for humans
    current.json                       {"version", "sha256", "artifact_path", "updated_at"}

The database is the source of truth: ``model_versions`` has one row per training run
(status ``champion`` / ``retired`` / ``rejected``; at most one champion, enforced by a
unique index) and ``model_events`` logs each promotion, retirement, rejection and
rollback. ``current.json`` is a pointer for readers that do not want to query the
database; it is always written after the database commit, through a temp file, fsync and
``os.replace``, and :func:`reconcile_pointer` repairs it when a run died in between.
Artifacts are only unpickled after their sha256 matches the ``model_versions`` row.

This module holds those operations (:func:`publish`, :func:`load_verified_model`,
:func:`reconcile_pointer`, :func:`rollback`); the rows are read and written by
:mod:`.versions`, the files by :mod:`.artifacts`, and both are re-exported here.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liquidity_core.errors import InputError, ModelError, NotFound
from liquidity_core.registry.artifacts import (  # noqa: F401 - re-exported: the registry's public face
    ARTIFACT_NAME,
    METADATA_NAME,
    POINTER_NAME,
    atomic_write_bytes,
    read_current_pointer,
    sha256_file,
    unpickle_model,
    version_dir,
    write_current_pointer,
    write_version_files,
)
from liquidity_core.registry.versions import (  # noqa: F401 - re-exported
    CHAMPION,
    JSON_COLUMNS,
    TS_COLUMNS,
    champion_history,
    get_champion,
    get_version,
    list_events,
    list_versions,
    record_event,
    record_version,
    set_status,
    utc_now_iso,
    versions_of_run,
)
from liquidity_core.settings import Settings
from liquidity_core.store import db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A verified, unpickled model version.

    Attributes
    ----------
    version : str
    pipeline : sklearn.pipeline.Pipeline
        ``Pipeline([("scale", StandardScaler()), ("model", RandomForestRegressor())])``.
    metadata : dict
        The version's ``model_versions`` row (JSON columns decoded).
    sha256 : str
        Hash of the artifact bytes that were unpickled.
    """

    version: str
    pipeline: Any
    metadata: dict = field(repr=False)
    sha256: str

    @property
    def feature_names(self) -> list[str]:
        """Feature columns the pipeline expects, in order."""
        return list(self.metadata["features"])

    @property
    def band_edges(self) -> list[float]:
        """Log-turnover edges between Low/Medium and Medium/High."""
        return [float(v) for v in self.metadata["band_edges"]]


# --- publish, load, reconcile, rollback -----------------------------------------------


def publish(
    settings: Settings, *, row: dict, model_file: Path, metadata: dict, promote: bool
) -> dict:
    """Publish one training run: version folder, ``model_versions`` row, pointer.

    Every run is recorded (rejected challengers keep their artifacts for audit). For a
    promotion the database commit comes first, then ``current.json`` is switched; a
    crash in between is repaired by :func:`reconcile_pointer`.

    Parameters
    ----------
    settings : Settings
    row : dict
        The ``model_versions`` columns except ``artifact_*`` and ``status``.
    model_file : Path
        The pickled pipeline (moved into the version folder).
    metadata : dict
        Written to ``metadata.json`` beside the artifact.
    promote : bool
        Make this version the champion.

    Returns
    -------
    dict
        The recorded row (decoded) plus ``retired``: the previous champion, if replaced.
    """
    engine = db.get_engine(settings.database_url)
    rel, sha, size = write_version_files(settings.model_dir, row["version"], model_file, metadata)
    row = dict(row, artifact_path=rel, artifact_sha256=sha, artifact_bytes=size)
    retired = record_version(engine, row, promote=promote)
    if promote:
        write_current_pointer(
            settings.model_dir, version=row["version"], sha256=sha, artifact_path=rel
        )
    log.info(
        "recorded %s as %s: %s",
        row["version"],
        "champion" if promote else "rejected",
        row["reason"],
    )
    return dict(get_version(engine, row["version"]), retired=retired)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def load_verified_model(settings: Settings, version: str | None = None) -> LoadedModel:
    """Load a model version after checking its bytes against the database.

    Parameters
    ----------
    settings : Settings
    version : str, default=None
        The version to load; None means the one ``current.json`` names.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        When there is no published model, the version is unknown, the artifact lies
        outside ``settings.model_dir``, is missing, or its sha256 differs from the
        ``model_versions`` row (or from the pointer); nothing is unpickled then.
    """
    model_dir = Path(settings.model_dir).resolve()
    pointer_sha = None
    if version is None:
        pointer = read_current_pointer(model_dir)
        if pointer is None:
            raise ModelError(
                f"no model has been published: {model_dir / POINTER_NAME} does not exist "
                "(run `liquidity train`)"
            )
        version, pointer_sha = str(pointer["version"]), str(pointer["sha256"])
    engine = db.get_engine(settings.database_url)
    try:
        row = get_version(engine, version)
    except NotFound:
        raise ModelError(f"model version {version!r} is not recorded in model_versions") from None
    expected = row["artifact_sha256"]
    if pointer_sha is not None and pointer_sha != expected:
        raise ModelError(
            f"current.json names {version} with sha256 {pointer_sha}, but model_versions "
            f"records {expected}"
        )
    path = (model_dir / row["artifact_path"]).resolve()
    if not _inside(path, model_dir):
        raise ModelError(f"artifact of {version} at {path} is outside the model folder {model_dir}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"artifact of model {version} cannot be read: {exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelError(
            f"artifact {path} of model {version} has sha256 {actual}, but model_versions "
            f"records {expected}: it was modified or corrupted; refusing to load it"
        )
    try:
        pipeline = unpickle_model(data)  # bytes verified against the registry
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a model error
        raise ModelError(f"artifact of model {version} does not unpickle: {exc}") from None
    if not hasattr(pipeline, "predict"):
        raise ModelError(f"artifact of model {version} is a {type(pipeline).__name__}, not a model")
    return LoadedModel(version=version, pipeline=pipeline, metadata=row, sha256=actual)


def reconcile_pointer(settings: Settings) -> str:
    """Make ``current.json`` agree with the database champion.

    Run at the start of every training cycle: a run killed between the database commit
    and the pointer switch left the pointer on the previous champion.

    Returns
    -------
    str
        What was done: ``"ok"``, ``"rewritten"``, ``"removed"`` or ``"none"``.

    Raises
    ------
    ModelError
        When the champion's artifact is missing or does not match its sha256.
    """
    engine = db.get_engine(settings.database_url)
    champion = get_champion(engine)
    pointer_path = Path(settings.model_dir) / POINTER_NAME
    try:
        pointer = read_current_pointer(settings.model_dir)
    except ModelError as exc:
        log.warning("replacing a malformed pointer: %s", exc)
        pointer = {"version": None, "sha256": None}
    if champion is None:
        if pointer is not None:
            log.warning(
                "current.json names %s but there is no champion; removing it",
                pointer.get("version"),
            )
            pointer_path.unlink(missing_ok=True)
            return "removed"
        return "none"
    if (
        pointer is not None
        and pointer.get("version") == champion["version"]
        and pointer.get("sha256") == champion["artifact_sha256"]
    ):
        return "ok"
    path = Path(settings.model_dir) / champion["artifact_path"]
    if not path.exists() or sha256_file(path) != champion["artifact_sha256"]:
        raise ModelError(
            f"champion {champion['version']} artifact {path} is missing or does not match its "
            "recorded sha256; current.json left unchanged"
        )
    log.warning(
        "current.json named %s; the database champion is %s: rewriting the pointer",
        None if pointer is None else pointer.get("version"),
        champion["version"],
    )
    write_current_pointer(
        settings.model_dir,
        version=champion["version"],
        sha256=champion["artifact_sha256"],
        artifact_path=champion["artifact_path"],
    )
    return "rewritten"


def rollback(settings: Settings, version: str | None = None, *, run_id: str | None = None) -> dict:
    """Make an earlier champion the champion again.

    Parameters
    ----------
    settings : Settings
    version : str, default=None
        The version to restore; None means the champion before the current one.
    run_id : str, default=None
        Recorded with the events.

    Returns
    -------
    dict
        ``{"version", "previous", "text"}``.

    Raises
    ------
    NotFound
        When ``version`` does not exist or there is no earlier champion.
    InputError
        When ``version`` is already champion or was never champion.
    ModelError
        When its artifact fails verification (nothing changes then).
    """
    engine = db.get_engine(settings.database_url)
    champion = get_champion(engine)
    current = champion["version"] if champion else None
    with db.transaction(engine) as conn:
        became = champion_history(conn)
    if version is None:
        earlier = [v for v in became if v != current]
        if not earlier:
            raise NotFound(
                f"there is no earlier champion to roll back to (current champion: {current})"
            )
        version = earlier[0]
    row = get_version(engine, version)
    if version == current:
        raise InputError(f"model version {version!r} is already the champion")
    if version not in became:
        raise InputError(
            f"model version {version!r} was never champion (status {row['status']}); "
            f"earlier champions: {sorted(set(became) - {current})}"
        )
    loaded = load_verified_model(settings, version)  # refuse a broken artifact up front
    reason = f"rolled back from {current}" if current else "rolled back"
    with db.transaction(engine) as conn:
        # Read the champion again inside the transaction that changes it: a publish or
        # another rollback since the checks above must not leave two champions or retire
        # the wrong one.
        now = conn.execute(CHAMPION).first()
        now = now.version if now is not None else None
        if now != current:
            raise InputError(
                f"the champion changed from {current} to {now} during the rollback; "
                "nothing was changed (run it again)"
            )
        if current is not None:
            set_status(conn, current, "retired")
            record_event(conn, current, "retired", f"rollback to {version}", run_id)
        set_status(conn, version, "champion")
        record_event(conn, version, "rolled_back", reason, run_id)
    write_current_pointer(
        settings.model_dir,
        version=version,
        sha256=loaded.sha256,
        artifact_path=row["artifact_path"],
    )
    return {
        "version": version,
        "previous": current,
        "text": f"champion is now {version} (was {current})",
    }
