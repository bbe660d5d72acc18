"""Serve the champion model and pick up a new one without a restart.

:class:`ModelHolder` keeps the model named by ``MODEL_DIR/current.json`` in memory. At
most every ``check_interval`` seconds a request triggers a cheap ``stat`` of the pointer
(modification time, size, inode); only when that changes (or the pointer was written in
the last two seconds, when a stat cannot tell two writes apart) is the pointer read;
when its bytes changed, the named version is loaded through
:func:`liquidity_core.registry.champion.load_verified_model`, which checks the artifact's sha256
against its ``model_versions`` row before unpickling.

- One thread loads at a time (a lock); the others keep answering with the model they
  already have, so a reload never stalls or fails a request.
- A request takes one model object and finishes on it: replacing the holder's
  reference does not change the object a request is using.
- When a load fails (missing or corrupt artifact, sha256 mismatch, malformed pointer)
  the reason is logged and kept for ``/readyz``, and the old model keeps serving. The
  same broken pointer is retried only after ``retry_interval`` seconds or when it
  changes, so a bad pointer does not make every request re-hash a file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from liquidity_core.errors import ModelError
from liquidity_core.settings import Settings

log = logging.getLogger(__name__)

POINTER_NAME = "current.json"
#: A pointer modified this recently is read even when its stat looks unchanged.
RACY_SECONDS = 2.0


@dataclass(frozen=True)
class ServingStatus:
    """What :meth:`ModelHolder.status` reports.

    Attributes
    ----------
    ready : bool
        A verified model is loaded and the newest pointer loaded without error.
    model_version : str or None
        Version of the model being served.
    loaded_at : str or None
        When that model was loaded (ISO 8601, UTC).
    reason : str or None
        Why the holder is not ready (no model yet, or the last load failed).
    failed_at : str or None
        When the last failed load happened (ISO 8601, UTC).
    checked_at : str or None
        When this process last looked at the pointer (ISO 8601, UTC, milliseconds).
    """

    ready: bool
    model_version: str | None
    loaded_at: str | None
    reason: str | None
    failed_at: str | None
    checked_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The status as a JSON-able dict."""
        return {
            "ready": self.ready,
            "model_version": self.model_version,
            "loaded_at": self.loaded_at,
            "reason": self.reason,
            "failed_at": self.failed_at,
            "checked_at": self.checked_at,
        }


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _default_loader(settings: Settings):
    from liquidity_core.registry.champion import load_verified_model

    return load_verified_model(settings)


class ModelHolder:
    """The served model, reloaded when ``current.json`` changes.

    Parameters
    ----------
    settings : Settings
        Where the model folder and the database are.
    check_interval : float, default=2.0
        Minimum seconds between two ``stat`` calls on the pointer.
    retry_interval : float, default=30.0
        Seconds before a pointer that failed to load is tried again when it has not
        changed.
    loader : callable, default=None
        ``loader(settings) -> LoadedModel``; default
        ``registry.load_verified_model(settings)`` (the version ``current.json`` names).
    clock : callable, default=time.monotonic
        Time source in seconds (tests pass a fake clock).

    Examples
    --------
    >>> holder = ModelHolder(settings)               # doctest: +SKIP
    >>> model = holder.get()                         # doctest: +SKIP
    >>> predict_liquidity(rows, model=model)         # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings,
        *,
        check_interval: float = 2.0,
        retry_interval: float = 30.0,
        loader: Callable[[Settings], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.check_interval = float(check_interval)
        self.retry_interval = float(retry_interval)
        self._loader = loader or _default_loader
        self._clock = clock
        self._lock = threading.Lock()
        self._model = None
        self._loaded_at: str | None = None
        self._checked_at: str | None = None
        self._next_check = float("-inf")
        self._stat_key: tuple | None = None  # stat of the pointer when last read
        self._content: bytes | None = None  # pointer bytes when last read
        self._loaded_content: bytes | None = None  # pointer bytes of the served model
        self._failed_content: bytes | None = None  # pointer bytes of the last failed load
        self._retry_at = float("-inf")
        self._error: str | None = None
        self._failed_at: str | None = None
        self.loads = 0  # successful loads, for tests and logs

    @property
    def pointer_path(self):
        """``MODEL_DIR/current.json``."""
        return self.settings.model_dir / POINTER_NAME

    def _read_pointer(self) -> bytes | None:
        """The pointer's bytes; a ``stat`` only when it is unchanged since the last read.

        The stat key is (mtime, size, inode, device). Like git's "racily clean" check, a
        pointer modified within the last ``RACY_SECONDS`` is read even when the key is
        unchanged, since two writes within one timestamp tick can reuse an inode and
        keep the size.
        """
        path = self.pointer_path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        racy = time.time() - st.st_mtime < RACY_SECONDS
        if key == self._stat_key and not racy:
            return self._content
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            return None
        self._stat_key, self._content = key, content
        return content

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the model if the pointer changed since the last look.

        Cheap when called often: nothing happens until ``check_interval`` has passed,
        then one ``stat``. When another thread is already loading, returns at once.

        Parameters
        ----------
        force : bool, default=False
            Ignore ``check_interval`` and the retry back-off and look now; wait for a
            load in progress instead of returning.

        Returns
        -------
        bool
            True when a new model was loaded by this call.
        """
        now = self._clock()
        if not force and now < self._next_check and self._model is not None:
            return False
        # Without a model, wait for a concurrent first load instead of failing.
        blocking = force or self._model is None
        if not self._lock.acquire(blocking=blocking):
            return False
        try:
            now = self._clock()
            if not force and now < self._next_check and self._model is not None:
                return False
            self._next_check = now + self.check_interval
            self._checked_at = datetime.now(UTC).isoformat(timespec="milliseconds")
            content = self._read_pointer()
            if content is None:
                self._fail(
                    None,
                    now,
                    f"no model has been published: {self.pointer_path} does not exist "
                    "(run `liquidity train`)",
                )
                return False
            if content == self._loaded_content and self._model is not None:
                self._error = self._failed_at = None  # back to the pointer being served
                self._failed_content = None
                return False
            if not force and content == self._failed_content and now < self._retry_at:
                return False
            return self._load(content, now)
        finally:
            self._lock.release()

    def _load(self, content: bytes, now: float) -> bool:
        try:
            if self._names_current_model(content):
                self._loaded_content = content
                self._failed_content = None
                self._error = self._failed_at = None
                return False
            model = self._loader(self.settings)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the old model serving
            reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            self._fail(content, now, reason)
            return False
        previous = self._model
        self._model = model
        self._loaded_at = _now_iso()
        self._loaded_content = content
        self._failed_content = None
        self._error = None
        self._failed_at = None
        self.loads += 1
        old = getattr(previous, "version", None)
        log.info("serving model %s (was %s)", getattr(model, "version", "?"), old)
        return True

    def _names_current_model(self, content: bytes) -> bool:
        """True when the pointer names the version and sha256 already being served."""
        if self._model is None:
            return False
        try:
            pointer = json.loads(content)
        except ValueError:
            raise ModelError(f"{self.pointer_path} is not valid JSON") from None
        return (
            isinstance(pointer, dict)
            and pointer.get("version") == getattr(self._model, "version", None)
            and pointer.get("sha256") == getattr(self._model, "sha256", None)
        )

    def _fail(self, content: bytes | None, now: float, reason: str) -> None:
        if self._model is not None:
            reason = f"{reason}; still serving model {getattr(self._model, 'version', '?')}"
        if reason != self._error:
            log.error("model reload failed: %s", reason)
            self._failed_at = _now_iso()
        self._error = reason
        self._failed_content = content
        self._retry_at = now + self.retry_interval

    def get(self):
        """Return the model to serve this request with.

        Returns
        -------
        LoadedModel
            The object the caller should use until its request ends.

        Raises
        ------
        ModelError
            When no model has ever loaded; the message gives the reason.
        """
        self.refresh()
        model = self._model
        if model is None:
            raise ModelError(self._error or "no model is loaded")
        return model

    def status(self) -> ServingStatus:
        """Check the pointer (subject to ``check_interval``) and report readiness.

        Returns
        -------
        ServingStatus
        """
        self.refresh()
        model = self._model
        return ServingStatus(
            ready=model is not None and self._error is None,
            model_version=getattr(model, "version", None),
            loaded_at=self._loaded_at if model is not None else None,
            reason=self._error if (model is None or self._error) else None,
            failed_at=self._failed_at,
            checked_at=self._checked_at,
        )
