"""The app's log output, written by a thread of its own so that logging never blocks a
request.

A request thread only formats its record and puts it on a bounded queue
(:class:`DroppingQueueHandler`); a :class:`logging.handlers.QueueListener` thread writes
the records to stderr. A stalled stderr (a full pipe, a slow log collector) then delays
the log, not the workers: when the queue is full, records are dropped and counted, and a
warning with the count follows once there is room again.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
from logging.handlers import QueueHandler, QueueListener

#: Records waiting for the writer thread at most; beyond this they are dropped.
QUEUE_SIZE = 10_000

_installed: tuple[DroppingQueueHandler, logging.Handler] | None = None
_listener: QueueListener | None = None


class DroppingQueueHandler(QueueHandler):
    """A :class:`QueueHandler` that never waits: a record that finds the queue full is
    dropped and counted, and the count is reported when a record fits again."""

    def __init__(self, q: queue.Queue):
        super().__init__(q)
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            note = logging.LogRecord(
                record.name, logging.WARNING, __file__, 0,
                f"log queue full: {dropped} log records were dropped", None, None,
            )  # fmt: skip
            try:
                self.queue.put_nowait(note)
            except queue.Full:
                self.dropped += dropped
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


def _start(handler: DroppingQueueHandler, target: logging.Handler) -> None:
    global _listener
    handler.queue = queue.Queue(QUEUE_SIZE)
    _listener = QueueListener(handler.queue, target, respect_handler_level=True)
    _listener.start()


def _restart_after_fork() -> None:
    """A forked child has the queue but not the writer thread: give it both anew."""
    if _installed is not None:
        _start(*_installed)


def _stop() -> None:
    if _listener is not None:
        _listener.stop()  # writes what is queued, then ends the thread


def install(level: int = logging.INFO) -> bool:
    """Send the root logger's records to stderr through a queue and a writer thread.

    Does nothing (returns False) when the root logger has a handler already: whoever
    configured logging decides. Installed once per process; a forked child gets its own
    writer thread.
    """
    global _installed
    root = logging.getLogger()
    if root.handlers:
        return False
    target = logging.StreamHandler()  # stderr
    target.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    handler = DroppingQueueHandler(queue.Queue(QUEUE_SIZE))
    _start(handler, target)
    if _installed is None:
        atexit.register(_stop)
        os.register_at_fork(after_in_child=_restart_after_fork)
    _installed = (handler, target)
    root.addHandler(handler)
    root.setLevel(level)
    return True
