"""Rate limits on ``/api/v1/*`` (Flask-Limiter).

One budget per client address covers every ``/api/v1/`` route together
(``LIQUIDITY_API_RATE_LIMIT``, e.g. ``600/minute``; ``off`` disables it). The counts live
in ``LIQUIDITY_RATE_LIMIT_STORAGE``: ``memory://`` keeps them per process (each gunicorn
worker counts alone), a Redis URL shares them between workers and hosts. Pages and the
health probes (``/healthz``, ``/readyz``) are never limited.

Over the limit the answer is a 429 in the API's error shape with ``Retry-After`` (whole
seconds until the window lets the client in again).

Refusals are counted, not logged one by one (a client over its limit must not turn its
traffic into log volume): ``liquidity_rate_limit_refusals_total`` counts them
(:mod:`webapp.metrics`), and :class:`RefusalLog` writes one line when a client is first
refused, then at most one summary line per client per window
(``RATE_LIMIT_LOG_WINDOW`` seconds, 60 by default) while it keeps being refused. Each
gunicorn worker summarizes its own refusals. Flask-Limiter's own line per refusal is
dropped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from flask import Flask, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse_many

from liquidity_core.errors import ConfigError
from webapp.errors import error_body
from webapp.metrics import count_refusal

log = logging.getLogger(__name__)

#: Paths the limit covers.
LIMITED_PREFIX = "/api/v1/"


class RefusalLog:
    """Rate-limit refusals per client, logged as a first line and then at most one
    summary line per client per ``window`` seconds.

    The first refusal of a client is logged at once. Further refusals are only counted;
    when the window that began with the first one ends, one line tells how many there
    were, and a new window begins while the client keeps being refused. A client whose
    window passes without a refusal is forgotten (its next refusal is a first one again).
    A daemon thread, started on demand and ended when no client is left, writes the
    summaries, so a client that stops is still reported.
    """

    def __init__(
        self,
        window: float = 60.0,
        *,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.window = float(window)
        self._log = logger
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: dict[str, list] = {}  # client -> [window start, refusals, limit]
        self._thread: threading.Thread | None = None

    def note(self, client: str, limit: str) -> None:
        """Record one refusal of ``client`` under ``limit`` (logs only the first)."""
        with self._lock:
            entry = self._clients.get(client)
            if entry is not None:
                entry[1] += 1
                entry[2] = limit
                return
            self._clients[client] = [self._clock(), 0, limit]
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rate-limit-log", daemon=True
                )
                self._thread.start()
        self._log.info(
            "client %s is over the API rate limit (%s): refused; further refusals are "
            "counted and summarized every %g s",
            client,
            limit,
            self.window,
        )

    def flush(self, now: float | None = None) -> float | None:
        """Write the summaries of the windows ended by ``now``; the next window end, if any."""
        now = self._clock() if now is None else now
        lines, next_end = [], None
        with self._lock:
            for client, entry in list(self._clients.items()):
                start, refused, limit = entry
                if now - start < self.window:
                    end = start + self.window
                    next_end = end if next_end is None else min(next_end, end)
                    continue
                if refused:
                    lines.append((client, refused, now - start, limit))
                    self._clients[client] = [now, 0, limit]
                    end = now + self.window
                    next_end = end if next_end is None else min(next_end, end)
                else:
                    del self._clients[client]
            if not self._clients:
                next_end = None
        for client, refused, span, limit in lines:
            self._log.info(
                "client %s: refused %d more requests in the last %.0f s (limit %s)",
                client,
                refused,
                span,
                limit,
            )
        return next_end

    def _run(self) -> None:
        while True:
            next_end = self.flush()
            if next_end is None:
                with self._lock:
                    if not self._clients:
                        self._thread = None
                        return
                continue
            time.sleep(max(0.01, next_end - self._clock()))


class _DropRefusalLines(logging.Filter):
    """Drops Flask-Limiter's one line per refused request (:class:`RefusalLog` sums them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("ratelimit ")


def _exempt() -> bool:
    return not request.path.startswith(LIMITED_PREFIX)


def check_rate_limit(value: str) -> str | None:
    """``value`` as a limit string, ``None`` when it turns the limit off.

    Raises
    ------
    ConfigError
        When ``value`` is not a limit such as ``600/minute``.
    """
    value = (value or "").strip()
    if value.lower() in ("off", "none", "0"):
        return None
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(
            f"LIQUIDITY_API_RATE_LIMIT={value!r} is not a rate limit such as '600/minute' "
            "or '10/second;600/minute' (or 'off')"
        ) from None
    return value


def init_app(app: Flask) -> Limiter | None:
    """Limit ``/api/v1/*`` on ``app`` as its settings say; returns the limiter, if any."""
    settings = app.config["SETTINGS"]
    limit = check_rate_limit(settings.api_rate_limit)
    if limit is None:
        return None
    limiter = Limiter(
        get_remote_address,
        app=app,
        application_limits=[limit],
        application_limits_exempt_when=_exempt,
        storage_uri=settings.rate_limit_storage,
        # Retry-After is set on the 429 below; Flask-Limiter's own header writer would
        # round it down once more.
        headers_enabled=False,
        # The limit protects the workers; when its storage (Redis) is down, count in
        # memory rather than refuse every request.
        in_memory_fallback_enabled=True,
        key_prefix="liquidity",
    )
    limiter_log = logging.getLogger("flask-limiter")
    if not any(isinstance(f, _DropRefusalLines) for f in limiter_log.filters):
        limiter_log.addFilter(_DropRefusalLines())
    refusals = RefusalLog(float(app.config.get("RATE_LIMIT_LOG_WINDOW", 60.0)))
    app.extensions["liquidity_refusal_log"] = refusals

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        retry = _retry_after(limiter, exc)
        count_refusal()
        refusals.note(get_remote_address(), str(exc.limit.limit))
        message = (
            f"too many requests: this API allows {exc.limit.limit} per client; "
            f"retry after {retry} s"
        )
        response = jsonify(error_body("too_many_requests", message))
        response.status_code = 429
        response.headers["Retry-After"] = str(retry)
        return response

    return limiter


def _retry_after(limiter: Limiter, exc: RateLimitExceeded) -> int:
    """Whole seconds until the breached window lets a request through again (>= 1)."""
    current = limiter.current_limit
    try:
        reset_at = current.reset_at if current is not None else None
    except Exception:  # noqa: BLE001 - a storage hiccup must not turn a 429 into a 500
        reset_at = None
    if reset_at is None:
        return max(1, int(exc.limit.limit.get_expiry()))
    return max(1, math.ceil(reset_at - time.time()))
