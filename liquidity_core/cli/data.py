"""``liquidity`` commands for data: db, ingest, demo-data."""

from __future__ import annotations

from pathlib import Path

from liquidity_core.cli.commands import ExitCode, command
from liquidity_core.settings import Settings

# --- db ----------------------------------------------------------------------------------


def _db_args(p):
    p.add_argument(
        "action",
        choices=["upgrade", "current", "history"],
        help="upgrade: apply pending revisions; current: the database's revision and whether "
        "it is the newest; history: the revisions, newest first",
    )


@command("db", "database schema: `liquidity db upgrade | current | history`", arguments=_db_args)
def _db(args, settings: Settings):
    from liquidity_core.store import db, migrate

    if args.action == "history":
        revisions = migrate.history()
        lines = [
            f"{r['revision']}{' (head)' if r['is_head'] else ''}: "
            + r["description"].split("\n")[0]
            for r in revisions
        ]
        return {"revisions": revisions, "text": "\n".join(lines)}, 0
    engine = db.get_engine(settings.database_url)
    if args.action == "current":
        state = db.current(engine)
        where = "head" if state["is_head"] else f"head is {state['head']}"
        return {**state, "text": f"{state['revision'] or 'no schema'} ({where})"}, 0
    applied = db.upgrade(engine)
    text = f"applied {', '.join(applied)}" if applied else "schema is up to date"
    return {"applied": applied, "revision": migrate.head(), "text": text}, 0


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
    from liquidity_core.ingest import ingest_paths

    results = ingest_paths(args.paths, settings=settings, move=args.move)
    ok = all(r.status in ("loaded", "duplicate") for r in results)
    lines = [r.summary_line() for r in results] or ["no CSV files found"]
    payload = {"files": [r.as_dict() for r in results], "ok": ok, "text": "\n".join(lines)}
    return payload, ExitCode.OK if ok and results else ExitCode.FAILURE


# --- demo-data ---------------------------------------------------------------------------


def _demo_args(p):
    p.add_argument("--out", type=Path, required=True, help="folder to write the drops to")
    p.add_argument("--coins", type=int, default=60)
    p.add_argument("--snapshots", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", default="2024-01-01", help="first snapshot date (UTC)")


@command("demo-data", "write synthetic CoinGecko-format drops", arguments=_demo_args)
def _demo(args, settings: Settings):
    from liquidity_core.inputs.demo import write_demo_drops

    files = write_demo_drops(
        args.out, coins=args.coins, snapshots=args.snapshots, seed=args.seed, start=args.start
    )
    return {"files": [str(f) for f in files], "text": f"wrote {len(files)} files to {args.out}"}, 0
