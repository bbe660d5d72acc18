"""Rate limits on ``/api/v1/*`` (Flask-Limiter).

One budget per client address covers every ``/api/v1/`` route together
(``LIQUIDITY_API_RATE_LIMIT``, e.g. ``600/minute``; ``off`` disables it). The counts live
in ``LIQUIDITY_RATE_LIMIT_STORAGE``: ``memory://`` keeps them per process (each gunicorn
worker counts alone), a Redis URL shares them between workers and hosts. Pages and the
health probes (``/healthz``, ``/readyz``) are never limited.

Over the limit the answer is a 429 in the API's error shape with ``Retry-After`` (whole
seconds until the window lets the client in again).
"""

from __future__ import annotations

import math
import time

from flask import Flask, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse_many

from liquidity_core.errors import ConfigError

from .errors import error_body
from .metrics import count_refusal

#: Paths the limit covers.
LIMITED_PREFIX = "/api/v1/"


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

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        retry = _retry_after(limiter, exc)
        count_refusal()
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
