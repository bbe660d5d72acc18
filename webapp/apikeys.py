"""Optional API keys: when ``LIQUIDITY_API_KEYS`` is set, POSTs to ``/api/v1/*`` need one.

``LIQUIDITY_API_KEYS`` is either a file of key hashes or a comma-separated list of them.
A hash is the sha256 of the key, in hex; the server never stores or sees a key at rest.
The file has one hash per line, optionally followed by a name; ``#`` starts a comment::

    3f1c...e9a0 alice
    # 8d02...77b1 bob (revoked)

The file is re-read when it changes (checked at most once a second), so issuing or
revoking a key needs no restart. ``GET /metrics`` needs a key too when keys are set
(:mod:`webapp.metrics`). A file that cannot be read or parsed leaves no key valid
(every request gets a 403) until it is fixed, and the problem is logged, without keys.

A request sends ``Authorization: Bearer <key>``: no key is a 401, a key whose hash is not
listed a 403. The presented key is hashed and compared with every listed hash by
``hmac.compare_digest``, so neither the match nor its position shows in the timing; keys
are never logged or echoed.

Issue and revoke keys with::

    python -m webapp.apikeys issue  --file keys.txt --name alice   # prints the key once
    python -m webapp.apikeys revoke --file keys.txt --name alice
    python -m webapp.apikeys list   --file keys.txt                # hashes and names

For compose, where ``LIQUIDITY_API_KEYS`` holds the list itself::

    python -m webapp.apikeys list --file keys.txt | cut -d' ' -f1 | paste -sd,
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import re
import secrets
import sys
import threading
import time
from pathlib import Path

from flask import Flask, jsonify, request

from liquidity_core.errors import ConfigError
from webapp.errors import error_body

log = logging.getLogger(__name__)

_HASH = re.compile(r"[0-9a-f]{64}")
#: Methods that never need a key (reads of public data).
OPEN_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROTECTED_PREFIX = "/api/v1/"


def hash_key(key: str) -> str:
    """The sha256 of ``key`` (UTF-8) in hex: what the keys file stores."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse_hashes(text: str, *, where: str) -> tuple[str, ...]:
    """The hashes in keys-file ``text``; ``where`` names the source in errors.

    Raises
    ------
    ConfigError
        A line whose first word is not a sha256 in hex (the line is not quoted: it may
        hold a key pasted by mistake).
    """
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        word = line.split()[0].lower()
        if not _HASH.fullmatch(word):
            raise ConfigError(
                f"{where} line {number}: expected the sha256 of a key (64 hex digits), "
                "not the key itself; see `python -m webapp.apikeys issue`"
            )
        found.append(word)
    return tuple(found)


class KeyRing:
    """The valid key hashes, from a list or a file re-read when it changes."""

    def __init__(self, source: str, *, check_interval: float = 1.0):
        source = source.strip()
        self._lock = threading.Lock()
        self._check_interval = check_interval
        self._checked = 0.0
        self._stamp: tuple | None = None
        if "," in source or _HASH.fullmatch(source.lower()):
            self.path = None
            items = "\n".join(source.split(","))
            self._hashes = parse_hashes(items, where="LIQUIDITY_API_KEYS item on")
        else:
            self.path = Path(source)
            if not self.path.is_file():
                raise ConfigError(
                    "LIQUIDITY_API_KEYS is neither a list of sha256 hashes nor a readable "
                    "file of them"
                )
            try:
                stat = self.path.stat()
                self._hashes = parse_hashes(self.path.read_text("utf-8"), where="API keys file")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"the API keys file cannot be read: {exc}") from None
            self._stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if stamp == self._stamp:
                return
            hashes = parse_hashes(self.path.read_text("utf-8"), where="API keys file")
        except (OSError, UnicodeDecodeError, ConfigError) as exc:
            if self._stamp is not None or self._hashes:
                log.error("API keys file unusable, no key is valid until it is fixed: %s", exc)
            self._hashes, self._stamp = (), None
            return
        if self._stamp is not None:
            log.info("API keys file changed: %d keys", len(hashes))
        self._hashes, self._stamp = hashes, stamp

    def hashes(self) -> tuple[str, ...]:
        """The current hashes (the file is checked at most once per ``check_interval``)."""
        if self.path is not None:
            now = time.monotonic()
            with self._lock:
                if now - self._checked >= self._check_interval:
                    self._checked = now
                    self._reload()
        return self._hashes

    def knows(self, key: str) -> bool:
        """True when ``key``'s hash is listed; constant time in the key and the list."""
        digest = hash_key(key).encode()
        found = False
        for listed in self.hashes():
            found |= hmac.compare_digest(digest, listed.encode())
        return found


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


# --- issuing and revoking keys ---------------------------------------------------------------


def _rewrite(path: Path, lines: list[str]) -> None:
    """Replace ``path`` atomically (mode 600) with ``lines``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(f"{line}\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_lines(path: Path) -> list[str]:
    return path.read_text("utf-8").splitlines() if path.exists() else []


def _entries(lines: list[str]) -> list[tuple[int, str, str]]:
    """(line index, hash, name) of the active lines."""
    out = []
    for i, line in enumerate(lines):
        words = line.split("#", 1)[0].split()
        if words:
            out.append((i, words[0].lower(), " ".join(words[1:])))
    return out


def issue(path: Path, name: str) -> str:
    """Add a new key named ``name`` to the keys file; return the key (shown only once)."""
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
        raise ValueError("a key name is 1-64 letters, digits or _.@-")
    lines = _read_lines(path)
    if any(n == name for _, _, n in _entries(lines)):
        raise ValueError(f"a key named {name!r} exists already; revoke it first")
    key = secrets.token_urlsafe(32)
    _rewrite(path, [*lines, f"{hash_key(key)} {name}"])
    return key


def revoke(path: Path, name: str) -> int:
    """Remove the keys named ``name`` (or whose hash starts with it); return how many."""
    lines = _read_lines(path)
    drop = {
        i for i, h, n in _entries(lines) if n == name or (len(name) >= 8 and h.startswith(name))
    }
    if drop:
        _rewrite(path, [line for i, line in enumerate(lines) if i not in drop])
    return len(drop)


def main(argv: list[str] | None = None) -> int:
    """``python -m webapp.apikeys issue|revoke|list --file F [--name N]``."""
    parser = argparse.ArgumentParser(prog="python -m webapp.apikeys", description=__doc__)
    parser.add_argument("action", choices=["issue", "revoke", "list"])
    parser.add_argument("--file", required=True, type=Path, help="the LIQUIDITY_API_KEYS file")
    parser.add_argument("--name", help="who the key is for (issue, revoke)")
    args = parser.parse_args(argv)
    try:
        if args.action == "list":
            for _, digest, name in _entries(_read_lines(args.file)):
                print(f"{digest} {name}")  # hashes are not secrets; keys are never stored
            return 0
        if not args.name:
            parser.error("--name is required")
        if args.action == "issue":
            print(issue(args.file, args.name))
            return 0
        count = revoke(args.file, args.name)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not count:
        print(f"error: no key named {args.name!r}", file=sys.stderr)
        return 1
    print(f"revoked {count} key(s) named {args.name!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
