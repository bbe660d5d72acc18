"""The ``liquidity`` command line.

Command modules (``data``, ``models``, ``forecasting``, ``report``, ``keys``) register
their commands with :func:`command`; ``liquidity_core.cli`` imports them all, so ``main``
sees every command.

Each sub-command parses its arguments, calls one ``liquidity_core`` function and prints
the result: a human line per item, or with ``--json`` one JSON object on stdout. The
global options (``--json``, ``--quiet``, ``--verbose``, ``--progress-every``) are
accepted anywhere on the line, before or after the command.

Errors, usage errors included, are one line on stderr, or with ``--json`` one JSON
object on stdout, in the web API's error shape plus the exit code::

    {"error": "input_rejected", "message": "...", "errors": [...], "exit_code": 3}

The exit status says what happened (:class:`ExitCode`; :data:`EXIT_CODES` maps the
project's exceptions to it):

==  ===================  ================================================================
0   ok                   the command did what was asked
1   failure              it ran but did not succeed: a file quarantined or refused, no
                         CSV found, too little data to train, a model artifact unusable
2   usage                the command line is wrong (unknown option, missing argument)
3   input_rejected       input was refused: a file or folder that does not exist, a bad
                         row or value, an unknown model version or coin
4   storage_unavailable  the database cannot be reached or failed the operation
5   alert                ``monitor --check``: the champion's alert fires
6   config               a setting (environment variable) is missing or malformed
==  ===================  ================================================================

Long work (ingest, train) reports progress on stderr (:mod:`liquidity_core.progress`):
a live display on a terminal, otherwise plain lines at most one every
``--progress-every`` seconds; ``--quiet`` shows none. It never goes to stdout.
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
import sys
from collections.abc import Callable

from liquidity_core import errors, progress
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


class ExitCode(enum.IntEnum):
    """The documented exit statuses of ``liquidity`` (see the module docstring)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    INPUT_REJECTED = 3
    STORAGE_UNAVAILABLE = 4
    ALERT = 5
    CONFIG = 6


#: Each project exception's exit code; the most specific class listed wins, and any other
#: :class:`~liquidity_core.errors.LiquidityError` is a plain failure.
EXIT_CODES: dict[type[errors.LiquidityError], ExitCode] = {
    errors.InputError: ExitCode.INPUT_REJECTED,
    errors.NotFound: ExitCode.INPUT_REJECTED,
    errors.DatabaseUnavailable: ExitCode.STORAGE_UNAVAILABLE,
    errors.DatabaseError: ExitCode.STORAGE_UNAVAILABLE,
    errors.MonitoringAlert: ExitCode.ALERT,
    errors.ConfigError: ExitCode.CONFIG,
    errors.ModelError: ExitCode.FAILURE,
    errors.NotEnoughData: ExitCode.FAILURE,
    errors.LiquidityError: ExitCode.FAILURE,
}


def exit_code_for(exc: errors.LiquidityError) -> ExitCode:
    """The exit code of ``exc``: its nearest class in :data:`EXIT_CODES`."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ExitCode.FAILURE


def _emit(payload: dict, as_json: bool) -> None:
    text = payload.pop("text", None)
    if as_json:
        print(json.dumps(payload, default=str, sort_keys=True))
    elif text is not None:
        print(text)
    else:
        print(json.dumps(payload, default=str, indent=2, sort_keys=True))


def _fail(command: str | None, code: ExitCode, message: str, as_json: bool, details=None) -> int:
    """Report an error: one line on stderr, or the JSON error object on stdout."""
    if as_json:
        body = {
            "error": code.name.lower(),
            "message": message,
            "errors": list(details or []),
            "exit_code": int(code),
        }
        print(json.dumps(body, default=str, sort_keys=True))
    else:
        print(f"liquidity{f' {command}' if command else ''}: error: {message}", file=sys.stderr)
    return int(code)


# --- entry point -------------------------------------------------------------------------


class _UsageError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.prog = parser.prog


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises on usage errors, so ``main`` reports them."""

    def error(self, message):
        raise _UsageError(self, message)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crypto-liquidity")
    except PackageNotFoundError:  # run from a source tree that is not installed
        import liquidity_core

        return liquidity_core.__version__


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every position on the line accepts. Below the top, they default to
    "not given" so an option before the command is not reset by the sub-parser."""

    def default(value):
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print one JSON object on stdout (results and errors)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help="show no progress",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="log what happens to stderr",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        metavar="SECONDS",
        default=default(progress.LOG_EVERY),
        help="without a terminal, at most one progress line per SECONDS "
        f"(default {progress.LOG_EVERY:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="liquidity",
        description=__doc__.splitlines()[0],
        epilog="exit codes: "
        + ", ".join(f"{int(c)} {c.name.lower().replace('_', ' ')}" for c in ExitCode),
    )
    parser.add_argument("--version", action="version", version=f"liquidity {_version()}")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_, add_arguments, _run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        _global_options(p, top=False)
        add_arguments(p)
    return parser


def _wants_json(argv: list[str]) -> bool:
    """``--json`` on the line (before any ``--``), read before parsing can fail."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def _progress_sink(args) -> progress.Sink:
    """Where progress goes: nowhere (``--quiet``), a live display on a terminal, plain
    lines otherwise; always stderr."""
    if args.quiet:
        return progress.SILENT
    if sys.stderr.isatty():
        from liquidity_core.cli.display import TerminalSink

        return TerminalSink()

    def write(line: str) -> None:
        print(f"liquidity {args.command}: {line}", file=sys.stderr, flush=True)

    return progress.LineSink(write, every=args.progress_every)


def main(argv: list[str] | None = None) -> int:
    """Run ``liquidity ARGV``; returns the exit code (:class:`ExitCode`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        if not as_json:
            parser.print_usage(sys.stderr)
        prefix = exc.prog.removeprefix("liquidity").strip() or None
        return _fail(prefix, ExitCode.USAGE, str(exc), as_json)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _help, _add, run = COMMANDS[args.command]
    try:
        settings = load_settings()
        with progress.listen(_progress_sink(args)):
            payload, code = run(args, settings)
    except errors.LiquidityError as exc:
        details = getattr(exc, "errors", None)
        return _fail(args.command, exit_code_for(exc), str(exc), args.json, details)
    _emit(payload, args.json)
    return int(code)
