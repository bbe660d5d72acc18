"""``liquidity keys``: issue, revoke and list the API keys (:mod:`liquidity_core.access`)."""

from __future__ import annotations

from pathlib import Path

from liquidity_core.cli.commands import command
from liquidity_core.errors import InputError
from liquidity_core.settings import Settings


def _keys_args(p):
    p.add_argument(
        "action",
        choices=["issue", "revoke", "list"],
        help="issue: add a key and print it, once; revoke: remove the keys of a name (or "
        "hash prefix); list: the hashes and names (hashes are not secrets)",
    )
    p.add_argument(
        "--file",
        type=Path,
        help="the keys file (default: LIQUIDITY_API_KEYS, when it names a file)",
    )
    p.add_argument("--name", help="who the key is for (issue, revoke)")


def _keys_file(args, settings: Settings) -> Path:
    if args.file is not None:
        return args.file
    source = (settings.api_keys or "").strip()
    if source and "," not in source and len(source) != 64:
        return Path(source)
    raise InputError("name the keys file: --file FILE (or LIQUIDITY_API_KEYS=FILE)")


@command("keys", "issue, revoke and list API keys", arguments=_keys_args)
def _keys(args, settings: Settings):
    from liquidity_core import access

    path = _keys_file(args, settings)
    if args.action == "list":
        found = access.entries(path)
        return {
            "file": str(path),
            "keys": [{"hash": digest, "name": name} for digest, name in found],
            "text": "\n".join(f"{digest} {name}" for digest, name in found),
        }, 0
    if not args.name:
        raise InputError(f"`liquidity keys {args.action}` needs --name NAME")
    if args.action == "issue":
        key = access.issue(path, args.name)
        return {"file": str(path), "name": args.name, "key": key, "text": key}, 0
    count = access.revoke(path, args.name)
    return {
        "file": str(path),
        "name": args.name,
        "revoked": count,
        "text": f"revoked {count} key(s) named {args.name!r}",
    }, 0
