"""Load at a fixed offered rate from ``hey``, with the CPU that ``hey`` itself used.

``hey`` (Debian package ``hey``) runs ``-c`` workers, each sending at most ``-q`` requests a
second for ``-z`` seconds, so ``q x c`` requests a second are offered whatever the server's
latency (as long as no worker waits longer than its interval: a late answer delays only
that worker's next request). Unlike the closed loop of :mod:`bench.wrk`, the latency then
says what a client sees at that traffic, not how deep a queue the generator keeps full.

Its summary is parsed: the latency percentiles (printed to 0.1 ms), the requests a second,
the status codes and the errors; the CPU time of the ``hey`` process comes from ``wait4``.

One ``hey`` does not spread its requests over time: its ``-c`` workers start their
tickers together, so ``-c 10 -q 15`` sends a burst of 10 requests within a tenth of a
millisecond every 67 ms (measured: 405 of 449 gaps between arrivals under 2 ms). A burst
of 10 on 2 server workers queues 5 deep. :func:`run_hey_even` offers the same rate evenly
spaced instead: ``-c`` processes of one connection each, started ``1 / rate`` seconds
apart, whose per-request timings (``-o csv``) are pooled.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class HeyResult:
    """One ``hey`` run.

    Attributes
    ----------
    requests : int
        Answered requests (any status).
    seconds : float
        Length of the run.
    rps : float
        Answered requests a second, as ``hey`` reports them.
    errors : int
        Requests without an answer (connection errors, timeouts) plus non-2xx answers.
    p50_ms, p90_ms, p99_ms, slowest_ms : float
        Latency percentiles and the slowest request.
    cpu_seconds : float
        User + system CPU of the ``hey`` process.
    """

    requests: int
    seconds: float
    rps: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    slowest_ms: float
    cpu_seconds: float

    @property
    def cpu_share(self) -> float:
        """``hey``'s CPU as a share of one core over the run."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


def available() -> bool:
    """Whether ``hey`` is on the PATH."""
    return shutil.which("hey") is not None


def parse_summary(text: str) -> dict:
    """The figures of ``hey``'s summary output (times in ms)."""

    def seconds(pattern: str) -> float | None:
        m = re.search(pattern, text)
        return None if m is None else float(m.group(1)) * 1000

    percentiles = {
        int(p): float(s) * 1000
        for p, s in re.findall(r"^\s*(\d+)%+ in ([\d.]+) secs", text, flags=re.MULTILINE)
    }
    statuses = {
        int(code): int(count)
        for code, count in re.findall(r"^\s*\[(\d{3})\]\s+(\d+) responses", text, re.MULTILINE)
    }
    failed = sum(
        int(count)
        for count in re.findall(
            r"^\s*\[(\d+)\]\s+(?!responses)\S.*$", _after(text, "Error distribution:"), re.MULTILINE
        )
    )
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    return {
        "total_ms": seconds(r"Total:\s+([\d.]+) secs"),
        "slowest_ms": seconds(r"Slowest:\s+([\d.]+) secs"),
        "rps": float(rps.group(1)) if rps else 0.0,
        "percentiles": percentiles,
        "statuses": statuses,
        "failed": failed,
    }


def _after(text: str, marker: str) -> str:
    at = text.find(marker)
    return "" if at < 0 else text[at + len(marker) :]


def run_hey(
    url: str,
    *,
    seconds: float,
    rate: float,
    connections: int,
    method: str = "GET",
    body: str | None = None,
    timeout: float = 10.0,
) -> HeyResult:
    """Offer ``rate`` requests a second to ``url`` for ``seconds``, over ``connections``.

    Each of the ``connections`` workers is limited to ``rate / connections`` requests a
    second (``hey -q``); ``body`` is sent as JSON with every request.
    """
    if not available():
        raise RuntimeError("hey is not installed (Debian: apt-get install hey)")
    with tempfile.TemporaryDirectory(prefix="liquidity-hey-") as tmp:
        cmd = _hey_command(
            Path(tmp), seconds, rate / connections, connections, method, timeout, body
        )
        out_path = Path(tmp) / "out.txt"
        with open(out_path, "wb") as out:
            proc = subprocess.Popen([*cmd, url], stdout=out, stderr=subprocess.STDOUT)
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        text = out_path.read_text(errors="replace")
    summary = parse_summary(text)
    pct = summary["percentiles"]
    answered = sum(summary["statuses"].values())
    if proc.returncode != 0 or not (answered or summary["failed"]):
        raise RuntimeError(f"hey failed (exit {proc.returncode}): {text[-2000:]}")
    non2xx = sum(n for code, n in summary["statuses"].items() if not 200 <= code < 300)
    return HeyResult(
        requests=answered,
        seconds=(summary["total_ms"] or 0.0) / 1000,
        rps=summary["rps"],
        errors=summary["failed"] + non2xx,
        # hey prints a percentile it has too few answers for as "0% in 0.0000 secs".
        p50_ms=pct.get(50, float("nan")),
        p90_ms=pct.get(90, float("nan")),
        p99_ms=pct.get(99, float("nan")),
        slowest_ms=summary["slowest_ms"] or float("nan"),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def _hey_command(tmp: Path, seconds, per_worker, connections, method, timeout, body) -> list:
    """``hey``'s arguments but the URL; ``body`` (JSON text, or None) goes in a file in
    ``tmp``, as ``hey -D`` takes it."""
    cmd = [
        "hey",
        "-z",
        f"{max(1, round(seconds))}s",
        "-c",
        str(connections),
        "-q",
        f"{per_worker:g}",
        "-t",
        f"{max(1, round(timeout))}",
        "-m",
        method,
    ]
    if body is not None:
        path = tmp / "body.json"
        path.write_text(body, encoding="utf-8")
        cmd += ["-T", "application/json", "-D", str(path)]
    return cmd


def run_hey_even(
    url: str,
    *,
    seconds: float,
    rate: float,
    connections: int,
    method: str = "GET",
    body: str | None = None,
    timeout: float = 10.0,
) -> HeyResult:
    """Offer ``rate`` requests a second to ``url`` for ``seconds``, evenly spaced.

    ``connections`` ``hey`` processes, each with one connection sending ``rate /
    connections`` requests a second, are started ``1 / rate`` seconds apart, so their
    requests interleave instead of arriving together. The percentiles are those of every
    request of every process; the CPU is theirs added up. ``errors`` counts the non-2xx
    answers: a request with no answer is not in ``hey``'s CSV, so it shows as answered
    requests a second (``rps``) below ``rate``.
    """
    if not available():
        raise RuntimeError("hey is not installed (Debian: apt-get install hey)")
    with tempfile.TemporaryDirectory(prefix="liquidity-hey-") as tmp:
        cmd = _hey_command(Path(tmp), seconds, rate / connections, 1, method, timeout, body)
        cmd += ["-o", "csv"]
        procs, outs = [], []
        t0 = time.perf_counter()
        for i in range(connections):
            time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            outs.append(open(Path(tmp) / f"out{i}.csv", "wb"))  # noqa: SIM115 - closed below
            procs.append(subprocess.Popen([*cmd, url], stdout=outs[-1], stderr=subprocess.STDOUT))
        cpu, latencies, statuses, failed = 0.0, [], [], []
        for proc, out in zip(procs, outs, strict=True):
            _pid, status, usage = os.wait4(proc.pid, 0)
            out.close()
            cpu += usage.ru_utime + usage.ru_stime
            text = Path(out.name).read_text(errors="replace")
            if os.waitstatus_to_exitcode(status) != 0:
                failed.append(text[-500:])
            for row in csv.DictReader(text.splitlines()):
                latencies.append(float(row["response-time"]) * 1000)
                statuses.append(int(row["status-code"] or 0))
    if failed or not latencies:
        raise RuntimeError(f"hey failed: {failed[:1] or 'no answers'}")
    ms = np.asarray(latencies)
    return HeyResult(
        requests=len(ms),
        seconds=float(seconds),
        rps=len(ms) / float(seconds),
        errors=sum(not 200 <= code < 300 for code in statuses),
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        slowest_ms=float(ms.max()),
        cpu_seconds=cpu,
    )
