"""The ``liquidity`` command line.

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
from pathlib import Path

from .errors import LiquidityError
from .settings import Settings, load_settings

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


# --- db ----------------------------------------------------------------------------------


def _db_args(p):
    p.add_argument("action", choices=["upgrade"], help="upgrade: apply pending sql/ migrations")


@command("db", "database schema: `liquidity db upgrade`", arguments=_db_args)
def _db(args, settings: Settings):
    from . import db

    applied = db.upgrade(db.get_engine(settings.database_url))
    text = f"applied {', '.join(applied)}" if applied else "schema is up to date"
    return {"applied": applied, "text": text}, 0


# --- ingest ------------------------------------------------------------------------------


def _ingest_args(p):
    p.add_argument("paths", nargs="+", type=Path, help="CSV files or folders of them")
    p.add_argument(
        "--move",
        action="store_true",
        help="move each file to processed/ or quarantine/ beside it afterwards",
    )


@command("ingest", "load CSV files or folders into market_snapshots", arguments=_ingest_args)
def _ingest(args, settings: Settings):
    from .ingest import ingest_paths

    results = ingest_paths(args.paths, settings=settings, move=args.move)
    ok = all(r.status in ("loaded", "duplicate") for r in results)
    lines = [r.summary_line() for r in results] or ["no CSV files found"]
    payload = {"files": [r.as_dict() for r in results], "ok": ok, "text": "\n".join(lines)}
    return payload, 0 if ok and results else 1


# --- demo-data ---------------------------------------------------------------------------


def _demo_args(p):
    p.add_argument("--out", type=Path, required=True, help="folder to write the drops to")
    p.add_argument("--coins", type=int, default=60)
    p.add_argument("--snapshots", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", default="2024-01-01", help="first snapshot date (UTC)")


@command("demo-data", "write synthetic CoinGecko-format drops", arguments=_demo_args)
def _demo(args, settings: Settings):
    from .demo import write_demo_drops

    files = write_demo_drops(
        args.out, coins=args.coins, snapshots=args.snapshots, seed=args.seed, start=args.start
    )
    return {"files": [str(f) for f in files], "text": f"wrote {len(files)} files to {args.out}"}, 0


# --- report ------------------------------------------------------------------------------


def _report_args(p):
    p.add_argument("--out", type=Path, default=None, help="folder for report.html (var/report)")


@command("report", "write the EDA and model report (one HTML file)", arguments=_report_args)
def _report(args, settings: Settings):
    from .report import build_report

    path = build_report(settings, out_dir=args.out)
    return {"path": str(path), "text": f"wrote {path}"}, 0


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
    # Importing the command modules registers their commands.
    from . import cli_models  # noqa: F401

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
