"""Scale: ``liquidity ingest``, ``train`` and ``report`` as processes on 1M/10M/50M-row panels.

Run with ``BENCH_SCALE=huge make bench`` (not in CI: an hour or more). For each panel of
``coins x 1,000`` daily snapshots (:data:`bench.common.Scale.huge_sizes`; pick some with
``BENCH_HUGE_SIZES=1m,10m``):

1. one CoinGecko-format CSV is written, streaming
   (:func:`liquidity_core.inputs.demo.write_panel_csv`),
   and kept in ``BENCH_HUGE_DIR`` (default ``/tmp/liquidity-bench-huge``) for later runs;
2. ``huge_copy_<n>``: ``psql \\copy`` of it into a table keyed like ``market_snapshots``
   (the reference of the ingest figures);
3. ``huge_ingest_<n>``: ``liquidity ingest FILE`` into a fresh PostgreSQL schema, as a
   process; rows/s with its ratio to the copy (goal >= 0.7), and peak memory (goal < 1 GiB).
   The schema is made first with ``liquidity db upgrade`` (timed, in the note), as the
   copy's table is made before the copy is timed: both figures load rows into a store
   that exists, as a nightly ingest does;
4. ``huge_train_<n>`` and ``huge_report_<n>``: ``liquidity train`` (the nightly cycle:
   default grid, candidates, holdout scoring, publication) and ``liquidity report``;
   ``huge_nightly_<n>`` is the two together (goals at 10M: <= 300 s and < 4 GiB; at
   50M: <= 1,200 s).

Peak memory is the largest sum of RSS over the process and all its children, polled with
psutil every 0.1 s (``peak_tree_mib``), and the largest single process's peak from
``wait4`` (``peak_rss_mib``, exact). Growth exponents ``log(peak_b / peak_a) /
log(rows_b / rows_a)`` between consecutive sizes are reported at the end.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from liquidity_core.inputs.demo import write_panel_csv

from .common import (
    REPO,
    Results,
    Scale,
    env_of,
    machine_note,
    make_settings,
    pg_schema,
    psql_command,
    psql_env,
    rows_label,
)
from .ingest import REF_DDL

GIB = 1024.0


def figure_names(scale: Scale) -> list[str]:
    names = []
    for coins, snaps in _sizes(scale):
        label = rows_label(coins * snaps)
        names += [f"huge_{k}_{label}" for k in ("copy", "ingest", "train", "report", "nightly")]
    return names


def _sizes(scale: Scale) -> list[tuple[int, int]]:
    wanted = (os.environ.get("BENCH_HUGE_SIZES") or "").strip().lower()
    sizes = list(scale.huge_sizes)
    if wanted:
        labels = {w.strip() for w in wanted.split(",") if w.strip()}
        sizes = [s for s in sizes if rows_label(s[0] * s[1]) in labels]
    return sizes


def panel_file(coins: int, snapshots: int) -> Path:
    """The cached CSV of a ``coins x snapshots`` panel, written when missing."""
    folder = Path(os.environ.get("BENCH_HUGE_DIR") or "/tmp/liquidity-bench-huge")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"coin_gecko_{coins}x{snapshots}.csv"
    if not path.exists():
        write_panel_csv(path, coins=coins, snapshots=snapshots, seed=20240101, start="2022-01-01")
    return path


def run_measured(args: list[str], env: dict, *, timeout: float) -> dict:
    """Run a process; its wall time, exit code, output tail and peak memory (MiB).

    The wall time ends when ``wait4`` returns (not at the next poll of the memory, which a
    thread takes every 0.1 s), so a short run is not rounded up by up to a poll's interval.
    """
    import threading

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, env=env, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    ps = psutil.Process(proc.pid)
    peak_tree = 0
    out_chunks: list[bytes] = []
    done = threading.Event()

    def poll_memory() -> None:
        nonlocal peak_tree
        while not done.is_set():
            try:
                total = 0
                for p in [ps, *ps.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak_tree = max(peak_tree, total)
            except psutil.Error:
                pass
            done.wait(0.1)

    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    poller = threading.Thread(target=poll_memory, daemon=True)
    poller.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _pid, status, rusage = os.wait4(proc.pid, 0)
    finally:
        seconds = time.perf_counter() - t0
        killer.cancel()
        done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if seconds > timeout:
        raise RuntimeError(f"{' '.join(args[:3])} ran over {timeout:.0f}s")
    poller.join()
    reader.join(timeout=10)
    output = b"".join(out_chunks).decode("utf-8", "replace")
    return {
        "seconds": seconds,
        "returncode": proc.returncode,
        "output": output[-3000:],
        "peak_tree_mib": peak_tree / 2**20,
        "peak_rss_mib": rusage.ru_maxrss / 1024,
        "cpu_seconds": rusage.ru_utime + rusage.ru_stime,
    }


def _liquidity(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "liquidity"), *args]


def _checked(name: str, measured: dict) -> dict:
    if measured["returncode"] != 0:
        raise RuntimeError(
            f"{name} failed (exit {measured['returncode']}):\n{measured['output'][-2000:]}"
        )
    return measured


def run(scale: Scale, results: Results) -> None:
    peaks: dict[str, list[tuple[int, float]]] = {"ingest": [], "nightly": []}
    for coins, snaps in _sizes(scale):
        n = coins * snaps
        label = rows_label(n)
        t0 = time.perf_counter()
        path = panel_file(coins, snaps)
        results.note(
            "huge",
            f"{label}: {path} ({path.stat().st_size / 1e6:,.0f} MB, {n:,} rows) ready in "
            f"{time.perf_counter() - t0:.0f}s; {machine_note()}",
        )
        with pg_schema("bench_huge") as (url, schema):
            _copy_reference(path, schema, n, label, results)
            root = Path(f"/tmp/liquidity-bench-huge-run-{os.getpid()}")
            settings = make_settings(root, url, LIQUIDITY_REFIT=None)  # the product's default
            env = env_of(settings)
            schema_made = _checked(
                "liquidity db upgrade", run_measured(_liquidity("db", "upgrade"), env, timeout=600)
            )
            ing = _checked(
                "liquidity ingest",
                run_measured(_liquidity("ingest", str(path)), env, timeout=7200),
            )
            results.add(
                f"huge_ingest_{label}",
                n / ing["seconds"],
                "rows/s",
                reference=f"huge_copy_{label}",
                goal=">= 0.7",  # of psql \copy's rows/s, in every run
                seconds=round(ing["seconds"], 1),
                peak_tree_mib=round(ing["peak_tree_mib"]),
                peak_rss_mib=round(ing["peak_rss_mib"]),
                cpu_seconds=round(ing["cpu_seconds"], 1),
                note=(
                    f"{ing['seconds']:.1f}s (CPU {ing['cpu_seconds']:.1f}s), "
                    f"peak {ing['peak_tree_mib']:.0f} MiB "
                    f"(goal < 1024); the schema made before it by `liquidity db upgrade` "
                    f"in {schema_made['seconds']:.1f}s; {machine_note()}"
                ),
            )
            peaks["ingest"].append((n, ing["peak_tree_mib"]))
            train = _checked(
                "liquidity train", run_measured(_liquidity("train"), env, timeout=7200)
            )
            _add_process(results, f"huge_train_{label}", train)
            report = _checked(
                "liquidity report", run_measured(_liquidity("report"), env, timeout=3600)
            )
            _add_process(results, f"huge_report_{label}", report)
            seconds = train["seconds"] + report["seconds"]
            peak = max(train["peak_tree_mib"], report["peak_tree_mib"])
            goal = {10_000_000: "<= 300", 50_000_000: "<= 1200"}.get(n)
            results.add(
                f"huge_nightly_{label}",
                seconds,
                "s",
                goal=goal,
                peak_tree_mib=round(peak),
                note=f"train + report; peak {peak:.0f} MiB"
                + (" (goal < 4096)" if n == 10_000_000 else ""),
            )
            peaks["nightly"].append((n, peak))
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    for what, points in peaks.items():
        for (n_a, p_a), (n_b, p_b) in zip(points, points[1:], strict=False):
            exponent = math.log(p_b / p_a) / math.log(n_b / n_a)
            results.note(
                "huge",
                f"{what} memory growth exponent {rows_label(n_a)} -> {rows_label(n_b)}: "
                f"{exponent:.2f} ({p_a:.0f} -> {p_b:.0f} MiB)"
                + (" (goal <= 0.5)" if what == "nightly" else ""),
            )


def _add_process(results: Results, name: str, m: dict) -> None:
    results.add(
        name,
        m["seconds"],
        "s",
        peak_tree_mib=round(m["peak_tree_mib"]),
        peak_rss_mib=round(m["peak_rss_mib"]),
        cpu_seconds=round(m["cpu_seconds"], 1),
        note=(
            f"CPU {m['cpu_seconds']:.0f}s, peak {m['peak_tree_mib']:.0f} MiB (process tree); "
            f"{machine_note()}"
        ),
    )


def _copy_reference(path: Path, schema: str, n: int, label: str, results: Results) -> None:
    ddl = REF_DDL.format(schema=schema, table="ref_coingecko")
    subprocess.run(psql_command(ddl), env=psql_env(), check=True, capture_output=True)
    copy = f"\\copy \"{schema}\".ref_coingecko FROM '{path}' WITH (FORMAT csv, HEADER true)"
    t0 = time.perf_counter()
    proc = subprocess.run(psql_command(copy), env=psql_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"psql \\copy failed: {proc.stderr.strip()}")
    subprocess.run(
        psql_command(f'DROP TABLE "{schema}".ref_coingecko'), env=psql_env(), capture_output=True
    )
    results.add(
        f"huge_copy_{label}",
        n / seconds,
        "rows/s",
        seconds=round(seconds, 1),
        note=f"{seconds:.1f}s psql \\copy, PK (date, coin)",
    )
