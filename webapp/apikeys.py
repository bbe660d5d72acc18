"""Optional API keys: when ``LIQUIDITY_API_KEYS`` is set, POSTs to ``/api/v1/*`` need one.

The keys file, its reloading and the constant-time check live in
:mod:`liquidity_core.access` (shared with ``liquidity keys``); this module is the Flask
side. A request sends ``Authorization: Bearer <key>``: no key is a 401, a key whose hash
is not listed a 403. Keys are never logged or echoed.

Issue and revoke keys with ``liquidity keys issue|revoke|list --file keys.txt``;
``python -m webapp.apikeys ...`` is an alias of it, kept for existing scripts.

``GET /metrics`` needs a key too when keys are set (:mod:`webapp.metrics`).
"""

from __future__ import annotations

import sys

from flask import Flask, jsonify, request

from liquidity_core.access import KeyRing, hash_key, parse_hashes
from webapp.errors import error_body

__all__ = ["KeyRing", "hash_key", "init_app", "main", "parse_hashes"]

#: Methods that never need a key (reads of public data).
OPEN_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROTECTED_PREFIX = "/api/v1/"


def _refuse(status: int, code: str, message: str, challenge: str):
    response = jsonify(error_body(code, message, [{"field": "Authorization", "problem": message}]))
    response.status_code = status
    response.headers["WWW-Authenticate"] = challenge
    return response


def check_bearer(ring: KeyRing):
    """None when the request sends ``Authorization: Bearer <key>`` with a key ``ring``
    knows; otherwise the refusal to answer with (401 no key, 403 an unknown key)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return _refuse(
            401,
            "unauthorized",
            "this request needs an API key: send 'Authorization: Bearer <key>'",
            'Bearer realm="liquidity"',
        )
    if not ring.knows(key):
        return _refuse(
            403,
            "forbidden",
            "the API key is not valid (unknown or revoked)",
            'Bearer realm="liquidity", error="invalid_token"',
        )
    return None


def init_app(app: Flask) -> KeyRing | None:
    """Require a key on ``app``'s API POSTs when ``LIQUIDITY_API_KEYS`` is set."""
    source = (app.config["SETTINGS"].api_keys or "").strip()
    if not source:
        return None
    ring = KeyRing(source)
    app.extensions["liquidity_api_keys"] = ring

    @app.before_request
    def _require_key():
        if request.method in OPEN_METHODS or not request.path.startswith(PROTECTED_PREFIX):
            return None
        return check_bearer(ring)

    return ring


def main(argv: list[str] | None = None) -> int:
    """``python -m webapp.apikeys ARGS``: the same as ``liquidity keys ARGS``."""
    from liquidity_core.cli import main as liquidity

    return liquidity(["keys", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
