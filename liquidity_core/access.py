"""API keys: the keys file, and issuing, revoking and listing keys.

``LIQUIDITY_API_KEYS`` is either a file of key hashes or a comma-separated list of them.
A hash is the sha256 of the key, in hex; the server never stores or sees a key at rest.
The file has one hash per line, optionally followed by a name; ``#`` starts a comment::

    3f1c...e9a0 alice
    # 8d02...77b1 bob (revoked)

:class:`KeyRing` holds the valid hashes and re-reads the file when it changes (checked at
most once a second), so issuing or revoking a key needs no restart. A file that cannot be
read or parsed leaves no key valid until it is fixed, and the problem is logged, without
keys. :meth:`KeyRing.knows` compares a presented key's hash with every listed hash by
``hmac.compare_digest``, so neither the match nor its position shows in the timing.

Keys are issued and revoked by ``liquidity keys issue|revoke|list`` (:func:`issue`,
:func:`revoke`, :func:`entries`); the web app (``webapp.apikeys``) checks the bearer key
of each request against a :class:`KeyRing`. For compose, where ``LIQUIDITY_API_KEYS``
holds the list itself::

    liquidity keys list --file keys.txt | cut -d' ' -f1 | paste -sd,
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path

from liquidity_core.errors import ConfigError, InputError, NotFound

log = logging.getLogger(__name__)

_HASH = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


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
                "not the key itself; see `liquidity keys issue`"
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
    try:
        return path.read_text("utf-8").splitlines() if path.exists() else []
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the keys file {path}: {exc}") from None


def _entries(lines: list[str]) -> list[tuple[int, str, str]]:
    """(line index, hash, name) of the active lines."""
    out = []
    for i, line in enumerate(lines):
        words = line.split("#", 1)[0].split()
        if words:
            out.append((i, words[0].lower(), " ".join(words[1:])))
    return out


def entries(path: Path) -> list[tuple[str, str]]:
    """``(hash, name)`` of each active key in the keys file (none when it is missing)."""
    return [(digest, name) for _, digest, name in _entries(_read_lines(Path(path)))]


def issue(path: Path, name: str) -> str:
    """Add a new key named ``name`` to the keys file; return the key (shown only once).

    Raises
    ------
    InputError
        The name is not 1-64 letters, digits or ``_.@-``, or a key of that name exists.
    """
    path = Path(path)
    if not _NAME.fullmatch(name):
        raise InputError("a key name is 1-64 letters, digits or _.@-")
    lines = _read_lines(path)
    if any(n == name for _, _, n in _entries(lines)):
        raise InputError(f"a key named {name!r} exists already; revoke it first")
    key = secrets.token_urlsafe(32)
    try:
        _rewrite(path, [*lines, f"{hash_key(key)} {name}"])
    except OSError as exc:
        raise InputError(f"cannot write the keys file {path}: {exc.strerror or exc}") from None
    return key


def revoke(path: Path, name: str) -> int:
    """Remove the keys named ``name`` (or whose hash starts with it); return how many.

    Raises
    ------
    NotFound
        No key has that name or hash prefix.
    """
    path = Path(path)
    lines = _read_lines(path)
    drop = {
        i for i, h, n in _entries(lines) if n == name or (len(name) >= 8 and h.startswith(name))
    }
    if not drop:
        raise NotFound(f"no key named {name!r}")
    try:
        _rewrite(path, [line for i, line in enumerate(lines) if i not in drop])
    except OSError as exc:
        raise InputError(f"cannot write the keys file {path}: {exc.strerror or exc}") from None
    return len(drop)
