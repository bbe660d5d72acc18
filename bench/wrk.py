"""Closed-loop HTTP load from ``wrk``, with the CPU that ``wrk`` itself used.

``wrk`` (Debian package ``wrk``) is an event-loop load generator in C: at the request rates
of this app it needs a few percent of one core, so the server keeps the machine's two
cores. Each connection sends its next request as soon as the previous answer arrives
(closed loop), so ``connections`` requests are always in flight.

A generated Lua script sends the given bodies in turn (one per request) and, at the end,
prints one JSON line with the request count, the errors by kind, the non-2xx statuses and
the latency percentiles; the CPU time of the ``wrk`` process comes from ``wait4``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARK = "WRK_RESULT "

_SCRIPT = r"""
local bodies = {BODIES}
local paths = {PATHS}
local method = "{METHOD}"
local headers = {["Content-Type"] = "application/json"}
local counter = 0
local non2xx = 0

function request()
  counter = counter + 1
  local path = paths[(counter % #paths) + 1]
  if #bodies == 0 then
    return wrk.format(method, path)
  end
  return wrk.format(method, path, headers, bodies[(counter % #bodies) + 1])
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '{MARK}{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "non2xx": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, bad,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One ``wrk`` run.

    Attributes
    ----------
    requests : int
        Completed requests.
    seconds : float
        Length of the run.
    errors : int
        Socket errors (connect, read, write, timeout) plus non-2xx answers.
    p50_ms, p90_ms, p99_ms, max_ms, mean_ms : float
        Latency percentiles as ``wrk`` measured them.
    cpu_seconds : float
        User + system CPU of the ``wrk`` process.
    """

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_share(self) -> float:
        """``wrk``'s CPU as a share of one core over the run."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


def available() -> bool:
    """Whether ``wrk`` is on the PATH."""
    return shutil.which("wrk") is not None


def _lua_list(texts: list[str]) -> str:
    """A Lua table of long-bracket strings."""
    return "{" + ", ".join("[==[" + t + "]==]" for t in texts) + "}"


def run_wrk(
    url: str,
    *,
    path: str | list[str],
    seconds: float,
    connections: int,
    method: str = "GET",
    bodies: list[str] | None = None,
    threads: int = 1,
    timeout: float = 10.0,
) -> WrkResult:
    """Run ``wrk`` against ``url + path`` and return what it measured.

    Parameters
    ----------
    url : str
        ``http://host:port``.
    path : str or list of str
        Request path, or paths taken in turn (one per request).
    seconds : float
        Length of the run (whole seconds, at least 1).
    connections : int
        Connections, each with one request in flight.
    method : str, default="GET"
    bodies : list of str, default=None
        JSON bodies sent in turn (one per request).
    threads : int, default=1
        ``wrk`` threads (one event loop handles hundreds of requests a second).
    timeout : float, default=10.0
        Seconds before ``wrk`` counts a request as timed out.
    """
    if not available():
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    paths = [path] if isinstance(path, str) else list(path)
    lua = (
        _SCRIPT.replace("{BODIES}", _lua_list(bodies or []))
        .replace("{PATHS}", _lua_list(paths))
        .replace("{METHOD}", method)
        .replace("{MARK}", MARK)
    )
    with tempfile.TemporaryDirectory(prefix="liquidity-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(lua, encoding="utf-8")
        out_path = Path(tmp) / "out.txt"
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                [
                    "wrk",
                    f"--threads={threads}",
                    f"--connections={connections}",
                    f"--duration={max(1, round(seconds))}s",
                    f"--timeout={timeout:g}s",
                    f"--script={script}",
                    url + paths[0],
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        text = out_path.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {text[-2000:]}")
    r = json.loads(lines[-1][len(MARK) :])
    errors = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["non2xx"]
    return WrkResult(
        requests=r["requests"],
        seconds=r["duration_us"] / 1e6,
        errors=errors,
        p50_ms=r["p50_us"] / 1000,
        p90_ms=r["p90_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        max_ms=r["max_us"] / 1000,
        mean_ms=r["mean_us"] / 1000,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )
