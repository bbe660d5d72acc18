"""Model files in ``MODEL_DIR``: version folders, ``current.json``, atomic writes.

Layout of ``MODEL_DIR``::

    versions/<version>/model.pkl       the fitted Pipeline, exactly as scored
    versions/<version>/metadata.json   what the model_versions row says, for humans
    current.json                       {"version", "sha256", "artifact_path", "updated_at"}

Every file is written through a temp file, fsync and ``os.replace``, so a reader sees the
old file or the new one, never a part.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import tempfile
from pathlib import Path

from liquidity_core.errors import ModelError
from liquidity_core.registry.versions import utc_now_iso

log = logging.getLogger(__name__)

POINTER_NAME = "current.json"
ARTIFACT_NAME = "model.pkl"
METADATA_NAME = "metadata.json"


#: Where a class pickled by an earlier layout of the package lives now. Artifacts pickle
#: classes by module path, so every artifact already published must keep loading.
MOVED_MODULES = {
    "liquidity_core.model.target": "liquidity_core.learn.estimators",
    "liquidity_core.model.features": "liquidity_core.features.build",
    "liquidity_core.model.intervals": "liquidity_core.learn.intervals",
    "liquidity_core.model.candidates": "liquidity_core.training.candidates",
    "liquidity_core.model.windows": "liquidity_core.features.windows",
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        return super().find_class(MOVED_MODULES.get(module, module), name)


def unpickle_model(data: bytes):
    """Unpickle an artifact's bytes, mapping the module paths in :data:`MOVED_MODULES`.

    Only call it on bytes whose sha256 matched the registry.
    """
    return _Unpickler(io.BytesIO(data)).load()  # noqa: S301 - verified bytes


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def version_dir(model_dir: Path, version: str) -> Path:
    """``MODEL_DIR/versions/<version>``."""
    return Path(model_dir) / "versions" / version


def read_current_pointer(model_dir: Path) -> dict | None:
    """Read ``MODEL_DIR/current.json``.

    Returns
    -------
    dict or None
        ``{"version", "sha256", "artifact_path", "updated_at"}``; None when no model
        has been published.

    Raises
    ------
    ModelError
        When the pointer exists but is not a JSON object naming a version and sha256.
    """
    path = Path(model_dir) / POINTER_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not data.get("version") or not data.get("sha256"):
        raise ModelError(f"{path} does not name a version and its sha256: {text[:200]!r}")
    return data


def write_current_pointer(model_dir: Path, *, version: str, sha256: str, artifact_path: str):
    """Point ``current.json`` at ``version`` (temp file, fsync, ``os.replace``)."""
    payload = {
        "version": version,
        "sha256": sha256,
        "artifact_path": artifact_path,
        "updated_at": utc_now_iso(),
    }
    atomic_write_bytes(
        Path(model_dir) / POINTER_NAME, (json.dumps(payload, indent=2) + "\n").encode()
    )
    log.info("current.json now names %s", version)
    return payload


def write_version_files(
    model_dir: Path, version: str, model_file: Path, metadata: dict
) -> tuple[str, str, int]:
    """Move a pickled model into ``versions/<version>/`` and write its metadata.json.

    Returns
    -------
    artifact_path, sha256, size : str, str, int
        The path relative to ``model_dir``, the file's hash and its size in bytes.
    """
    target_dir = version_dir(model_dir, version)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / ARTIFACT_NAME
    if Path(model_file) != target:
        with open(model_file, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(model_file, target)
        _fsync_dir(target_dir)
    sha = sha256_file(target)
    meta = dict(metadata, artifact_sha256=sha, artifact_path=str(target.relative_to(model_dir)))
    atomic_write_bytes(
        target_dir / METADATA_NAME,
        (json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n").encode(),
    )
    return str(target.relative_to(model_dir)), sha, target.stat().st_size
