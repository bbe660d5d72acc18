"""Gunicorn settings for the web app::

    gunicorn -c python:webapp.gunicorn_conf 'webapp:create_app()'

docker-compose and the serving bench both start gunicorn with this file, so the settings
measured are the settings shipped. Its serving defaults (a flag on the command line
overrides each):

- ``gthread`` workers with **2 threads** each: keep-alive connections, and a second
  request is read while one is computed. More threads do not add capacity (a prediction
  holds the GIL for most of its work) but lengthen the tail: at 4 threads the one-row
  predict p99 under load was 52-57 ms against 32-35 ms at 1 or 2 (2026-12-07, bench).
- The workers' heartbeat files in ``/dev/shm`` (memory) when it exists: each worker
  touches its file on every turn of its loop.
- **No access log**: ``/metrics`` counts every request by route, method and status, with
  its latency; a line per request costs the worker about 0.2 ms and is what a client over
  its rate limit would turn its traffic into. ``--access-logfile=-`` turns it on.

It also sets up ``prometheus_client``'s multiprocess mode, so ``/metrics`` adds up the counts of
every worker, whichever worker answers the scrape:

- ``PROMETHEUS_MULTIPROC_DIR`` is set when gunicorn reads this file, in the master, before
  any worker imports ``prometheus_client`` (which picks its mode once, at import). When the
  environment names a folder, it is used (created if missing); otherwise a new temporary
  folder is made (under ``TMPDIR``; ``/tmp`` is a tmpfs in the compose file) and removed
  when gunicorn exits.
- The folder is emptied when the master starts: counts of an earlier server would
  otherwise be added to this one's.
- When a worker exits, its live-gauge files are marked dead (``child_exit``); its counters
  and histograms stay, so totals never go backwards when a worker is replaced.

Every other setting comes from the command line as usual.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_ENV = "PROMETHEUS_MULTIPROC_DIR"

worker_class = "gthread"
threads = 2
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = None

if os.environ.get(_ENV):
    _created = False
    Path(os.environ[_ENV]).mkdir(parents=True, exist_ok=True)
else:
    _created = True
    os.environ[_ENV] = tempfile.mkdtemp(prefix="liquidity-metrics-")


def on_starting(server) -> None:
    """Empty the multiprocess folder before the first worker starts."""
    folder = Path(os.environ[_ENV])
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server, worker) -> None:
    """Mark an exited worker's live gauges dead."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """Remove the multiprocess folder when this file created it."""
    if _created:
        shutil.rmtree(os.environ[_ENV], ignore_errors=True)
