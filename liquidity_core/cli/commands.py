"""The ``liquidity`` command line.

Command modules (``data``, ``models``, ``forecasting``, ``report``) register their
commands with :func:`command`; ``liquidity_core.cli`` imports them all, so ``main`` sees
every command.

Each sub-command parses its arguments, calls one ``liquidity_core`` function and prints
the result: a human line per item, or with ``--json`` one JSON object on stdout. Errors
go to stderr as one line, with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from liquidity_core.errors import LiquidityError
from liquidity_core.settings import load_settings

# name -> (help, add_arguments, run). run(args, settings) returns (payload, exit_code)
# where payload is a JSON-able dict and the human text is payload["text"] if present.
Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable]
COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, *, arguments: Callable | None = None):
    """Register the decorated ``run(args, settings)`` as ``liquidity <name>``.

    ``arguments(parser)``, when given, adds the command's options.
    """

    def wrap(run):
        COMMANDS[name] = (help, arguments or (lambda p: None), run)
        return run

    return wrap


def _emit(payload: dict, as_json: bool) -> None:
    text = payload.pop("text", None)
    if as_json:
        print(json.dumps(payload, default=str, sort_keys=True))
    elif text is not None:
        print(text)
    else:
        print(json.dumps(payload, default=str, indent=2, sort_keys=True))


# --- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liquidity", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_, add_arguments, _run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _help, _add, run = COMMANDS[args.command]
    try:
        settings = load_settings()
        payload, code = run(args, settings)
    except LiquidityError as exc:
        print(f"liquidity {args.command}: error: {exc}", file=sys.stderr)
        return 2
    _emit(payload, args.json)
    return code
