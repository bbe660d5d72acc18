"""The hand-over between training stages: staging folders and their files.

The stages of :mod:`.cycle` pass large objects to each other as files in
``MODEL_DIR/staging/<run id>/`` (``data.pkl``, ``data.json``, ``challenger.json``,
``decision.json``, ``model.pkl``), never in memory or XCom. This module names those
folders, reads and writes their files, and removes what runs that died left behind.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path

import pandas as pd

from liquidity_core.errors import InputError
from liquidity_core.registry import champion as registry
from liquidity_core.settings import Settings
from liquidity_core.store import db

#: The training stages log as one logger, the cycle's, so that one switch (tests,
#: bench/retrain.py) follows a whole run.
log = logging.getLogger("liquidity_core.training.cycle")

MODEL_FILE = "model.pkl"
#: The drift reference of the fitted rows (:func:`liquidity_core.learn.psi.reference_of_rows`).
DRIFT_FILE = "drift_reference.json"
#: The challenger's forecasts of the holdout rows, in their staged order (numpy .npy).
HOLDOUT_PREDICTIONS = "holdout_predictions.npy"


def staging_dir(settings: Settings, run_id: str) -> Path:
    """``MODEL_DIR/staging/<run id>`` with the run id made safe for a file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return Path(settings.model_dir) / "staging" / safe


#: What a run that died leaves behind, untouched this long, is removed by the next run.
#: (Between the DAG's tasks a live run's staging folder is idle, so age is the only safe
#: sign of death; a day is far beyond any stage's run time.)
STALE_STAGING_SECONDS = 24 * 3600


def remove_stale_staging(settings: Settings, *, older_than: float = STALE_STAGING_SECONDS):
    """Delete what runs that died left behind, untouched for ``older_than`` seconds.

    That is: staging folders (``MODEL_DIR/staging/<run id>``, holding the feature panel),
    version folders with no ``model_versions`` row (killed between writing the artifact
    and recording it), and ``*.tmp`` files of interrupted atomic writes.

    Returns
    -------
    list of str
        The removed paths, relative to ``MODEL_DIR``.
    """
    root = Path(settings.model_dir)
    now = time.time()

    def stale(path: Path) -> bool:
        try:
            return now - path.lstat().st_mtime > older_than
        except FileNotFoundError:
            return False

    candidates = []
    if (root / "staging").is_dir():
        candidates += [p for p in (root / "staging").iterdir() if p.is_dir()]
    if (root / "versions").is_dir():
        engine = db.get_engine(settings.database_url)
        recorded = {v["version"] for v in registry.list_versions(engine)}
        candidates += [
            p for p in (root / "versions").iterdir() if p.is_dir() and p.name not in recorded
        ]
    candidates += [p for p in root.rglob("*.tmp") if p.is_file()]
    removed = []
    for path in candidates:
        if not stale(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(str(path.relative_to(root)))
    if removed:
        log.warning("removed what dead runs left behind: %s", removed)
    return removed


def write_json(path: Path, payload: dict) -> None:
    registry.atomic_write_bytes(
        path, (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode()
    )


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path} is missing: the stage that writes it has not run for this run id"
        ) from None


def load_stage_data(stage: Path) -> dict:
    path = stage / "data.pkl"
    if not path.exists():
        raise InputError(f"{path} is missing: run the data stage for this run id first")
    return pd.read_pickle(path)  # noqa: S301 - written by prepare_data in our own folder
