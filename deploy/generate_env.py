"""Fill the empty secrets of a compose ``.env`` file with fresh random values.

Usage: ``python3 deploy/generate_env.py [.env]`` (default ``.env``; created from
``.env.example`` when missing). Values already set are kept; only empty ``NAME=`` lines of
the secret variables are filled. Standard library only, so it runs with any Python 3.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / ".env.example"
# Names may start with "_", as Airflow's _AIRFLOW_WWW_USER_* do.
LINE = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>.*)$")


def secret_for(name: str) -> str | None:
    """A fresh value for the secret variable ``name``; None for a non-secret."""
    if name == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    if name.endswith(("_PASSWORD", "_SECRET", "_SECRET_KEY")):
        return secrets.token_urlsafe(32)
    return None


def fill(text: str) -> tuple[str, list[str]]:
    """Return ``text`` with its empty secrets filled, and the names filled."""
    out, filled = [], []
    for line in text.splitlines():
        match = LINE.match(line)
        if match and not match["value"].strip():
            value = secret_for(match["name"])
            if value is not None:
                line = f"{match['name']}={value}"
                filled.append(match["name"])
        out.append(line)
    return "\n".join(out) + "\n", filled


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else Path(".env")
    text = target.read_text() if target.exists() else EXAMPLE.read_text()
    new_text, filled = fill(text)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new_text)
    os.chmod(target, 0o600)
    print(f"{target}: filled {', '.join(filled) if filled else 'nothing (all secrets set)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
