"""Shared pieces of the benchmarks: scales, figures, databases, settings, child processes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from sqlalchemy.engine import make_url

from devtools import scratch_schema
from liquidity_core.settings import Settings
from tests.support.env import make_settings  # noqa: F401 - the benchmarks' settings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Scale:
    """Sizes of one benchmark scale.

    Attributes
    ----------
    name : str
        ``full``, ``small`` or ``tiny``.
    ingest_coins, ingest_snapshots : int
        The generated ingest file has ``coins * snapshots`` rows.
    drop_coins : int
        Rows of the one-snapshot drop timed for the ingest DAG latency.
    retrain_sizes : tuple of (coins, snapshots)
        Panels of the retrain cycle, smallest first.
    retrain_grid : str
        ``liquidity_core.training.cycle.GRIDS`` key of the timed cycle.
    naive_mode : str
        ``measured`` (run the naive GridSearchCV) or ``estimated`` (probe fits).
    serve_coins, serve_snapshots : int
        Panel of the serving store.
    serve_grid : str
        Grid of the served champion (``heaviest``: see :mod:`bench.serving`).
    load_seconds : float
        Length of the load run.
    repeats_1, repeats_batch : int
        Repeats of the in-process and sequential HTTP timings (1 row, 1,000 rows).
    dag_test : bool
        Also time a real ``dag.test()`` of the ingest DAG (when it exists).
    huge_sizes : tuple of (coins, snapshots)
        Panels of :mod:`bench.huge` (``BENCH_SCALE=huge`` only).
    fixed_rate_seconds : float
        Length of the fixed-rate ``hey`` run of the serving benchmark.
    """

    name: str
    ingest_coins: int
    ingest_snapshots: int
    drop_coins: int
    retrain_sizes: tuple
    retrain_grid: str
    naive_mode: str
    serve_coins: int
    serve_snapshots: int
    serve_grid: str
    load_seconds: float
    repeats_1: int
    repeats_batch: int
    dag_test: bool
    huge_sizes: tuple = ()
    fixed_rate_seconds: float = 20.0

    @property
    def ingest_rows(self) -> int:
        return self.ingest_coins * self.ingest_snapshots


SCALES = {
    "full": Scale(
        name="full",
        ingest_coins=2000,
        ingest_snapshots=500,
        drop_coins=2000,
        retrain_sizes=((2000, 150), (2000, 500)),  # 300k and 1M rows: the goals
        retrain_grid="default",
        naive_mode="estimated",
        serve_coins=2000,
        serve_snapshots=60,
        serve_grid="heaviest",
        load_seconds=30.0,
        repeats_1=200,
        repeats_batch=20,
        dag_test=True,
    ),
    "small": Scale(
        name="small",
        ingest_coins=500,
        ingest_snapshots=100,
        drop_coins=500,
        retrain_sizes=((200, 100), (200, 200)),
        retrain_grid="default",
        naive_mode="estimated",
        serve_coins=300,
        serve_snapshots=40,
        serve_grid="heaviest",
        load_seconds=5.0,
        repeats_1=50,
        repeats_batch=5,
        dag_test=False,
    ),
    "tiny": Scale(
        name="tiny",
        ingest_coins=100,
        ingest_snapshots=20,
        drop_coins=50,
        retrain_sizes=((40, 25), (40, 50)),
        retrain_grid="fast",
        naive_mode="measured",
        serve_coins=40,
        serve_snapshots=25,
        serve_grid="fast",
        load_seconds=4.0,
        repeats_1=5,
        repeats_batch=2,
        dag_test=False,
        fixed_rate_seconds=3.0,
    ),
}
#: ``huge``: only :mod:`bench.huge`, as processes, at 1M, 10M and 50M rows (not in CI).
SCALES["huge"] = replace(
    SCALES["full"],
    name="huge",
    huge_sizes=((1000, 1000), (10_000, 1000), (50_000, 1000)),
)


def get_scale(name: str | None = None) -> Scale:
    """The scale named by ``name`` or ``BENCH_SCALE`` (default ``full``)."""
    name = (name or os.environ.get("BENCH_SCALE") or "full").strip().lower()
    if name not in SCALES:
        raise SystemExit(f"BENCH_SCALE={name!r} is not one of {sorted(SCALES)}")
    return SCALES[name]


def rows_label(n: int) -> str:
    """``250000`` -> ``250k``, ``1000000`` -> ``1m``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n >= 1000:
        return f"{round(n / 1000):g}k"
    return str(n)


# --- figures -------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure.

    ``ratio`` is ``value / reference value`` when a reference was measured in the same
    run; ``goal`` is text such as ``">= 0.5"`` applying to the ratio when ``goal_on`` is
    ``"ratio"``, else to the value.
    """

    name: str
    value: float | int | None
    unit: str
    ratio: float | None = None
    reference: str | None = None
    goal: str | None = None
    goal_on: str = "value"
    met: bool | None = None
    note: str | None = None
    extra: dict = field(default_factory=dict)

    def line(self) -> str:
        text = f"{self.name}: {_num(self.value)} {self.unit}".rstrip()
        if self.ratio is not None:
            text += f" ({self.ratio:.3g}x vs {self.reference})"
        if self.goal is not None:
            what = "ratio " if self.goal_on == "ratio" else ""
            state = {True: "met", False: "MISSED", None: "not measured"}[self.met]
            text += f"  [goal {what}{self.goal}: {state}]"
        if self.note:
            text += f"  -- {self.note}"
        return text


def _num(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def check_goal(value, goal: str) -> bool | None:
    """Whether ``value`` meets ``goal`` (``">= 0.5"``, ``"<= 2"``, ``"< 200"``, ``"== 0"``,
    or a closed range ``"0.75..0.85"``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if ".." in goal:
        low, _, high = goal.partition("..")
        return float(low) <= value <= float(high)
    op, _, bound = goal.partition(" ")
    bound = float(bound)
    return {
        ">=": value >= bound,
        "<=": value <= bound,
        "<": value < bound,
        ">": value > bound,
        "==": value == bound,
    }[op]


class Results:
    """Collects figures, prints each as it comes, and writes them as JSON."""

    def __init__(self, scale: Scale):
        self.scale = scale
        self.figures: dict[str, Figure] = {}
        self.notes: dict[str, str] = {}

    def add(
        self,
        name: str,
        value,
        unit: str,
        *,
        reference: str | None = None,
        goal: str | None = None,
        goal_on: str | None = None,
        note: str | None = None,
        **extra,
    ) -> Figure:
        """Record a figure; with ``reference`` (a recorded figure's name) add the ratio.

        ``goal_on`` defaults to ``"ratio"`` when a reference is given, else ``"value"``.
        """
        ratio = None
        if reference is not None:
            ref = self.figures.get(reference)
            if ref is not None and ref.value and value is not None:
                ratio = float(value) / float(ref.value)
            else:
                reference = None
        goal_on = goal_on or ("ratio" if reference is not None else "value")
        fig = Figure(
            name=name,
            value=value,
            unit=unit,
            ratio=ratio,
            reference=reference,
            goal=goal,
            goal_on=goal_on,
            note=note,
            extra=extra,
        )
        if goal is not None:
            fig.met = check_goal(ratio if goal_on == "ratio" else value, goal)
        self.figures[name] = fig
        print(fig.line(), flush=True)
        return fig

    def note(self, area: str, text: str) -> None:
        """A line of context for an area (printed and stored)."""
        self.notes.setdefault(area, "")
        self.notes[area] = (self.notes[area] + "\n" + text).strip()
        print(f"  ({area}) {text}", flush=True)

    def as_dict(self) -> dict:
        return {
            "scale": self.scale.name,
            "figures": {k: asdict(v) for k, v in self.figures.items()},
            "notes": self.notes,
        }


# --- databases and settings ----------------------------------------------------------------


def pg_base_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG


def pg_schema(prefix: str = "bench"):
    """A fresh PostgreSQL schema on :func:`pg_base_url`, dropped afterwards;
    yields ``(url, schema)``."""
    return scratch_schema(pg_base_url(), prefix)


def psql_command(sql_or_meta: str) -> list[str]:
    """``psql`` arguments for the PostgreSQL server of :func:`pg_base_url`."""
    url = make_url(pg_base_url())
    cmd = [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
        "-d",
        url.database or "postgres",
        "-c",
        sql_or_meta,
    ]
    return cmd


def psql_env() -> dict:
    env = dict(os.environ)
    url = make_url(pg_base_url())
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


def env_of(settings: Settings) -> dict[str, str]:
    """The process environment with the LIQUIDITY_* variables of ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQUIDITY_")}
    env.update(settings.as_env())
    return env


CHILD_MARK = "BENCH_CHILD "


def run_child(module: str, spec: dict, settings: Settings, *, timeout: float) -> dict:
    """Run ``python -m <module> --child SPEC`` with ``settings``; return its JSON result.

    The child prints one line ``BENCH_CHILD {...}``; its own peak memory is measured
    there (``getrusage(RUSAGE_SELF)``), so the parent's memory never counts.
    """
    proc = subprocess.run(
        [sys.executable, "-m", module, "--child", json.dumps(spec)],
        env=env_of(settings),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(CHILD_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"child {module} {spec.get('mode')} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return json.loads(lines[-1][len(CHILD_MARK) :])


def child_report(payload: dict) -> None:
    """Print a child's result line, with its peak RSS (MiB) added."""
    import resource

    payload = dict(payload)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    payload["peak_rss_mib"] = usage.ru_maxrss / 1024
    payload["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    payload["children_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(CHILD_MARK + json.dumps(payload, default=str), flush=True)


def machine_note() -> str:
    """CPU count and load average, to read the figures against."""
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def python_speed() -> float:
    """CPU milliseconds this machine takes for a million turns of a plain Python loop (best
    of 3): a yardstick for reading per-request CPU figures taken on another machine. The
    serving figures are mostly Python work, so they scale about as this does."""
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.process_time() - t0)
    return round(1000 * best, 1)
