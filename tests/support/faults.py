"""Helpers for the reliability tests: big files, a killable TCP proxy, subprocess drivers.

Everything here drives real parts: the ``liquidity`` CLI and Python processes that call
``liquidity_core`` exactly as the CLI and the DAG tasks do, a real TCP forwarder between
a client and PostgreSQL, real files. Nothing is mocked.

Run as a script it is one of the helper processes::

    python tests/support/faults.py proxy LISTEN_PORT TARGET_HOST TARGET_PORT
    python tests/support/faults.py train RUN_ID [--kill-before-pointer | --kill-before-record]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script (the tests' child processes): tests/ on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.net import free_port  # noqa: E402, F401 - the fault tests import it from here
from support.paths import REPO  # noqa: E402

LIQUIDITY = REPO / ".venv" / "bin" / "liquidity"
if not LIQUIDITY.exists():  # pragma: no cover - a venv elsewhere
    LIQUIDITY = Path(sys.executable).parent / "liquidity"

HEADER = "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\n"


# --- database faults (PostgreSQL) ---------------------------------------------------------


def fail_inserts(engine, times: int, sqlstate: str = "40P01", message: str = "deadlock detected"):
    """The next ``times`` inserts into ``market_snapshots`` fail with ``sqlstate``, as when a
    concurrent load deadlocks with this one. A statement trigger raises it; a sequence counts
    the inserts tried, since a sequence keeps its value when the transaction rolls back."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SEQUENCE inserts_tried")
        conn.exec_driver_sql(
            "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF nextval('inserts_tried') <= {times} THEN "
            f"RAISE EXCEPTION '{message}' USING ERRCODE = '{sqlstate}'; END IF; "
            "RETURN NULL; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER injected_fault BEFORE INSERT ON market_snapshots "
            "FOR EACH STATEMENT EXECUTE FUNCTION injected_fault()"
        )


def inserts_tried(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT last_value FROM inserts_tried").scalar()


# --- data ----------------------------------------------------------------------------------


def write_big_csv(path: Path, *, coins: int = 2000, snapshots: int = 100, seed: int = 3) -> int:
    """Write a CoinGecko-format file of ``coins * snapshots`` distinct, valid rows.

    Returns the number of data rows.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = coins * snapshots
    coin = np.tile(np.arange(coins), snapshots)
    day = np.repeat(np.arange(snapshots), coins)
    dates = pd.date_range("2023-01-01", periods=snapshots, freq="D").strftime("%Y-%m-%d")
    frame = pd.DataFrame(
        {
            "coin": [f"Coin{c:05d}" for c in coin],
            "symbol": [f"C{c:05d}" for c in coin],
            "price": np.round(rng.lognormal(2, 2, n), 6),
            "1h": np.round(rng.normal(0, 0.01, n), 5),
            "24h": np.round(rng.normal(0, 0.03, n), 5),
            "7d": np.round(rng.normal(0, 0.08, n), 5),
            "24h_volume": np.round(rng.lognormal(15, 2, n), 1),
            "mkt_cap": np.round(rng.lognormal(19, 2, n), 1),
            "date": np.asarray(dates)[day],
        }
    )
    frame.to_csv(path, index=False, lineterminator="\n")
    return n


# --- processes -----------------------------------------------------------------------------


def liquidity_env(settings, **extra: str) -> dict[str, str]:
    """The process environment with ``settings`` as LIQUIDITY_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITY_")}
    env.update(settings.as_env(), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_cli(settings, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``liquidity ARGS...`` with ``settings`` in the environment; waits for it."""
    return subprocess.run(
        [str(LIQUIDITY), *args],
        env=liquidity_env(settings),
        text=True,
        capture_output=True,
        timeout=timeout,
        cwd=str(REPO),
        **kwargs,
    )


#: A plain progress line of ``liquidity`` on stderr when it is not a terminal
#: (``liquidity_core.progress.LineSink``): ``liquidity ingest: [   5.0s] ...``.
PROGRESS_LINE = re.compile(r"liquidity [\w-]+: \[\s*\d+\.\ds\] ")


def message_lines(stderr: str) -> list[str]:
    """The non-empty lines of ``stderr`` that are not progress lines."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not PROGRESS_LINE.match(ln)]


def start_cli(settings, *args: str) -> subprocess.Popen:
    """``liquidity ARGS...`` started in its own process group."""
    return subprocess.Popen(
        [str(LIQUIDITY), *args],
        env=liquidity_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
        start_new_session=True,
    )


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of ``proc`` (started with ``start_new_session``)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=30)


class Proxy:
    """A TCP forwarder process 127.0.0.1:<port> -> target, killable with SIGKILL."""

    def __init__(self, target_host: str, target_port: int, log_path: Path):
        self.port = free_port()
        self.target = (target_host, target_port)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proxy:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "proxy",
                str(self.port),
                self.target[0],
                str(self.target[1]),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"proxy did not listen on {self.port}")

    def bytes_forwarded(self) -> int:
        """Bytes forwarded client -> server so far (the proxy prints a running total)."""
        text = self.log_path.read_text(errors="replace")
        marks = [ln for ln in text.splitlines() if ln.startswith("up ")]
        return int(marks[-1].split()[1]) if marks else 0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        if getattr(self, "_log", None):
            self._log.close()


def url_via(url: str, port: int) -> str:
    """``url`` (a postgresql URL) with its host and port replaced by 127.0.0.1:port."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


# --- state fingerprints ----------------------------------------------------------------------


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> hex)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def database_dump(database_url: str) -> dict[str, list[tuple]]:
    """Every row of every project table, sorted (a logical, backend-neutral snapshot)."""
    import sqlalchemy as sa

    from liquidity_core.store import db

    engine = db.get_engine(database_url)
    out = {}
    with db.transaction(engine) as conn:
        names = sorted(sa.inspect(conn).get_table_names())
        for name in names:
            rows = conn.execute(
                sa.select(
                    sa.table(
                        name, *[sa.column(c["name"]) for c in sa.inspect(conn).get_columns(name)]
                    )
                )
            ).all()
            out[name] = sorted(tuple(map(str, r)) for r in rows)
    return out


# --- pickles that must never be unpickled ------------------------------------------------------


def booby_trapped_pickle(marker: Path) -> bytes:
    """Pickle bytes whose unpickling creates ``marker`` (and would run any code)."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


# --- script mode -------------------------------------------------------------------------------


def _proxy_main(listen_port: int, host: str, port: int) -> None:
    import asyncio

    total = {"up": 0}

    async def pipe(reader, writer, count: bool):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if count:
                    total["up"] += len(data)
                    print(f"up {total['up']}", flush=True)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w, True), pipe(server_r, client_w, False))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _train_main(run_id: str, mode: str | None) -> None:
    """One training cycle as ``liquidity train`` runs it, optionally dying at a boundary.

    ``--kill-before-pointer``: SIGKILL right after the database commit of a promotion,
    before ``current.json`` is switched. ``--kill-before-record``: SIGKILL after the
    version folder is written, before the ``model_versions`` row is committed.
    """
    from liquidity_core.registry import champion as registry
    from liquidity_core.settings import load_settings
    from liquidity_core.training.cycle import run_training_cycle

    def die(*_a, **_k):
        print("KILLING MYSELF", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "--kill-before-pointer":
        registry.write_current_pointer = die
    elif mode == "--kill-before-record":
        registry.record_version = die
    out = run_training_cycle(load_settings(), run_id=run_id, grid="fast", candidates=False)
    print("RESULT " + json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "proxy":
        _proxy_main(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "train":
        _train_main(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:  # pragma: no cover
        raise SystemExit(f"unknown mode {sys.argv[1]!r}")
