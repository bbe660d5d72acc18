"""Errors as responses: JSON for the API, an HTML page for the pages.

Every JSON error has one shape::

    {"error": "<code>", "message": "<one line>",
     "errors": [{"field": "<the client's field name>", "problem": "<what is wrong>",
                 "index": <row number, for batch input>}]}

``errors`` names each bad field; for problems with the request as a whole (malformed
JSON, too large a body, too many rows) the field is ``"body"``.
"""

from __future__ import annotations

import logging
import tempfile
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from liquidity_core import errors as core

log = logging.getLogger(__name__)

# Project errors -> (HTTP status, error code)
STATUS = [
    (core.InputError, 422, "invalid_input"),
    (core.NotFound, 404, "not_found"),
    (core.NotEnoughData, 422, "not_enough_data"),
    (core.ModelError, 503, "model_unavailable"),
    (core.DatabaseUnavailable, 503, "database_unavailable"),
    (core.DatabaseError, 503, "database_error"),
    (core.ConfigError, 500, "config_error"),
    (core.LiquidityError, 400, "bad_request"),
]


class ApiError(Exception):
    """A request the API refuses; ``errors`` lists ``{"field", "problem"[, "index"]}``."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []


#: Headers every response gets unless it sets them itself: (name, lower-case name, value).
SECURITY_HEADERS = tuple(
    (name, name.lower(), value)
    for name, value in (
        (
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    )
)
#: :data:`SECURITY_HEADERS` and, for the JSON paths, no caching.
SECURITY_HEADERS_JSON = (*SECURITY_HEADERS, ("Cache-Control", "cache-control", "no-store"))


def wants_json() -> bool:
    """True for API, probe and metrics paths, whose errors are JSON."""
    return _json_path(request.path)


def _json_path(path: str) -> bool:
    return path.startswith("/api/") or path in ("/healthz", "/readyz", "/metrics")


class SecurityHeaders:
    """WSGI middleware: every response gets the headers of :data:`SECURITY_HEADERS` (and
    :data:`SECURITY_HEADERS_JSON` on the JSON paths) that it does not set itself.

    Added to the header list the app hands to the server, after Flask has built it: going
    through the response's ``Headers`` object (an ``after_request`` hook) checked and
    copied each value again, a tenth of a one-row GET's CPU in the app.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        json_path = _json_path(environ.get("PATH_INFO") or "/")

        def start(status, headers, exc_info=None):
            present = {name.lower() for name, _value in headers}
            wanted = SECURITY_HEADERS_JSON if json_path else SECURITY_HEADERS
            headers.extend((name, value) for name, lower, value in wanted if lower not in present)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def error_body(code: str, message: str, errors: list[dict] | None = None) -> dict:
    """The JSON error body."""
    return {"error": code, "message": message, "errors": errors or []}


@lru_cache(maxsize=8)
def _private_words(settings) -> tuple[tuple[str, str], ...]:
    """(server text, public stand-in) pairs, longest first: folders, the database URL,
    file and host. Public pages and error bodies never show the server's own names."""
    from liquidity_core.settings import PROJECT_ROOT

    pairs = {
        str(settings.model_dir): "MODEL_DIR",
        str(settings.ingest_dir): "INGEST_DIR",
        str(settings.var_dir): "VAR_DIR",
        str(PROJECT_ROOT): "APP_DIR",
        str(Path.home()): "~",
        str(Path(tempfile.gettempdir()).resolve()): "TMP",
        tempfile.gettempdir(): "TMP",
        settings.database_url: "the database",
    }
    url = sa.engine.make_url(settings.database_url)
    if url.database and url.get_backend_name() == "sqlite":
        pairs[str(url.database)] = "the database file"
    if url.host:
        pairs[f"{url.host}:{url.port or 5432}"] = "the database server"
        pairs[url.host] = "the database server"
    pairs = {k: v for k, v in pairs.items() if k and len(k) > 1}
    return tuple(sorted(pairs.items(), key=lambda kv: -len(kv[0])))


def public_text(text):
    """``text`` with server paths, the database URL and host replaced by stand-ins."""
    if not isinstance(text, str) or not text:
        return text
    for word, stand_in in _private_words(current_app.config["SETTINGS"]):
        text = text.replace(word, stand_in)
    return text


def _respond(status: int, code: str, message: str, errors: list[dict] | None = None):
    message = public_text(message)
    errors = [{k: public_text(v) for k, v in e.items()} for e in errors or []]
    if wants_json():
        response = jsonify(error_body(code, message, errors))
        response.status_code = status
        return response
    page = render_template(
        "error.html", status=status, code=code, message=message, errors=errors or []
    )
    return page, status


def _field_errors(exc: Exception) -> list[dict]:
    found = getattr(exc, "errors", None) or []
    out = []
    for item in found:
        if isinstance(item, dict):
            out.append({k: v for k, v in item.items() if k in ("index", "field", "problem")})
    return out


def init_app(app: Flask) -> None:
    """Register the error handlers and the security headers on ``app``."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return _respond(exc.status, exc.code, exc.message, exc.errors)

    @app.errorhandler(core.LiquidityError)
    def _liquidity_error(exc: core.LiquidityError):
        status, code = next((s, c) for kind, s, c in STATUS if isinstance(exc, kind))
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.path, exc)
        return _respond(status, code, str(exc), _field_errors(exc))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc):
        limit = app.config["MAX_CONTENT_LENGTH"]
        message = f"the request body is larger than the limit of {limit} bytes"
        return _respond(413, "body_too_large", message, [{"field": "body", "problem": message}])

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = _respond(exc.code or 500, code, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response = app.make_response(response)
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(sa.exc.SQLAlchemyError)
    def _database_error(exc):
        log.error("database error on %s %s: %s", request.method, request.path, exc)
        return _respond(503, "database_unavailable", "the database cannot answer this request now")

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500, "internal_error", "internal error; the server log has details")

    app.wsgi_app = SecurityHeaders(app.wsgi_app)
