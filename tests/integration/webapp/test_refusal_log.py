"""Rate-limit refusals are counted, not logged one by one, and logging never blocks a worker.

- A burst of 1,000 refusals writes two log lines (the first refusal, then one summary),
  not 1,000; Flask-Limiter's own line per refusal is gone.
- :class:`webapp.limits.RefusalLog` writes at most one line per client per window, and
  its thread writes the summary of a client that stopped.
- :class:`webapp.logs.DroppingQueueHandler`: with a stalled writer, 20,000 log calls
  still return at once; what does not fit is dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from logging.handlers import QueueListener

from support.env import make_settings

from webapp import create_app
from webapp.limits import RefusalLog
from webapp.logs import DroppingQueueHandler


def test_a_burst_of_refusals_writes_a_few_log_lines(tmp_path, caplog):
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'l.db'}", LIQUIDITY_API_RATE_LIMIT="1 per 1 minute"
    )
    app = create_app({"SETTINGS": settings, "PRELOAD_MODEL": False})
    client = app.test_client()
    caplog.set_level(logging.DEBUG)
    assert client.get("/api/v1/openapi.json").status_code == 200
    refused = sum(client.get("/api/v1/openapi.json").status_code == 429 for _ in range(1000))
    assert refused == 1000
    app.extensions["liquidity_refusal_log"].flush(time.monotonic() + 3600)  # the window ends
    lines = [r.getMessage() for r in caplog.records if r.name in ("webapp.limits", "flask-limiter")]
    assert 1 <= len(lines) <= 3, lines
    assert "over the API rate limit" in lines[0]
    assert any("refused 999 more requests" in line for line in lines), lines
    assert not any(line.startswith("ratelimit ") for line in lines)


def test_refusal_summary_is_written_when_the_window_ends():
    logger, records = _recording_logger("test.refusals.thread")
    refusals = RefusalLog(0.3, logger=logger)
    for _ in range(10):
        refusals.note("198.51.100.7", "5 per 1 second")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (len(records) < 2 or refusals._thread is not None):
        time.sleep(0.05)
    messages = [r.getMessage() for r in records]
    assert len(messages) == 2 and "refused 9 more requests" in messages[1], messages
    assert refusals._thread is None  # no client left: the thread ended


def _recording_logger(name: str) -> tuple[logging.Logger, list]:
    logger = logging.getLogger(name)
    logger.handlers.clear()
    records: list = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, records


def test_refusal_log_writes_one_line_per_client_per_window():
    now = [0.0]
    logger, records = _recording_logger("test.refusals")
    refusals = RefusalLog(60.0, logger=logger, clock=lambda: now[0])
    refusals._thread = threading.current_thread()  # no flush thread: flushed by hand
    for second in range(180):  # two clients refused 10 times a second for 3 minutes
        now[0] = float(second)
        refusals.flush()
        for _ in range(10):
            refusals.note("198.51.100.1", "5 per 1 second")
            refusals.note("198.51.100.2", "5 per 1 second")
    now[0] = 240.0
    refusals.flush()
    refusals.flush(400.0)  # a quiet window: the clients are forgotten
    by_client = {}
    for record in records:
        by_client.setdefault(record.args[0], []).append(record.getMessage())
    for client, lines in by_client.items():
        # the first refusal, then one summary per window
        assert len(lines) == 4, (client, lines)
        assert "over the API rate limit" in lines[0]
        assert [int(line.split("refused ")[1].split()[0]) for line in lines[1:]] == [
            599,
            600,
            600,
        ], lines
    assert not refusals._clients


def test_logging_never_blocks_on_a_stalled_writer():
    release = threading.Event()

    class Stalled(logging.Handler):
        def emit(self, record):
            release.wait(30)

    handler = DroppingQueueHandler(queue.Queue(100))
    listener = QueueListener(handler.queue, Stalled())
    listener.start()
    logger = logging.getLogger("test.stalled")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        started = time.perf_counter()
        for i in range(20_000):
            logger.warning("line %d", i)
        took = time.perf_counter() - started
        assert took < 2.0, f"20,000 log calls took {took:.1f} s with a stalled writer"
        assert handler.dropped > 19_000
        release.set()
        time.sleep(0.2)
        logger.warning("after")
        listener.stop()
    finally:
        release.set()
        logger.removeHandler(handler)
    assert handler.dropped == 0  # reported with the next record
