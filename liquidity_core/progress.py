"""Progress of long work: a tiny reporter the library calls and a shell listens to.

The library reports three kinds of event, and nothing else:

- :func:`task` -- a unit of work with a size (one ingested file: its bytes), a context
  manager; inside it :func:`update` reports how far it got (bytes done, rows read), so a
  listener can show rows, rows/s and an ETA;
- :func:`stage` -- a named step of a longer job starts (``training 2/4: challenger``);
- :func:`step` -- one small result within a stage (a CV fold and its score).

A listener is a :class:`Sink`, installed with :func:`listen` (the CLI installs a ``rich``
display on a terminal, plain lines otherwise; ``--quiet`` installs :data:`SILENT`). With
no sink installed, events become log lines of the ``liquidity.progress`` logger at INFO,
at most one every :data:`LOG_EVERY` seconds, so an Airflow task's log shows them; when
that logger is not enabled for INFO the calls return at once. Nothing here imports more
than the standard library.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

#: Seconds between two plain progress lines (log lines and piped CLI output).
LOG_EVERY = 5.0

log = logging.getLogger("liquidity.progress")


@dataclass
class Task:
    """A unit of work in progress (one file); sinks read it, the library updates it."""

    name: str
    total: float | None = None  # in ``unit``; None when unknown
    unit: str = "bytes"
    done: float = 0.0
    rows: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rows_per_second(self) -> float | None:
        elapsed = self.elapsed
        return self.rows / elapsed if self.rows and elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left, from the rate so far; None when it cannot be told."""
        elapsed = self.elapsed
        if not self.total or not self.done or elapsed <= 0 or self.done >= self.total:
            return None
        return (self.total - self.done) * elapsed / self.done

    def describe(self) -> str:
        """One line: name, rows, rows/s, percent, ETA (what is known of them)."""
        parts = [self.name, f"{self.rows:,} rows"]
        if (rate := self.rows_per_second) is not None:
            parts.append(f"{rate:,.0f} rows/s")
        if self.total:
            parts.append(f"{min(self.done / self.total, 1.0):.0%}")
        if (eta := self.eta) is not None:
            parts.append(f"ETA {eta:.0f}s")
        return ", ".join(parts)


class Sink:
    """Receives the events; every method is optional (the defaults ignore the event)."""

    def task_started(self, task: Task) -> None: ...

    def task_updated(self, task: Task) -> None: ...

    def task_finished(self, task: Task) -> None: ...

    def stage(self, name: str) -> None: ...

    def step(self, message: str) -> None: ...

    def close(self) -> None: ...


#: A sink that shows nothing (``--quiet``).
SILENT = Sink()


class LineSink(Sink):
    """Plain lines through ``write``, at most one every ``every`` seconds.

    The first line comes ``every`` seconds after the sink starts listening, so work that
    ends sooner prints nothing; an event that falls within the interval is dropped (the
    next one carries the news).
    """

    def __init__(self, write: Callable[[str], None], *, every: float = LOG_EVERY):
        self._write = write
        self._every = every
        self._start = time.monotonic()
        self._last = self._start
        self._stage = ""
        self._lock = threading.Lock()

    def _emit(self, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._every:
                return
            self._last = now
        self._write(f"[{now - self._start:7.1f}s] {text}")

    def task_updated(self, task: Task) -> None:
        self._emit(task.describe())

    def task_finished(self, task: Task) -> None:
        self._emit(f"{task.describe()}, done in {task.elapsed:.1f}s")

    def stage(self, name: str) -> None:
        self._stage = name
        self._emit(name)

    def step(self, message: str) -> None:
        self._emit(f"{self._stage}: {message}" if self._stage else message)


class _LogDefault(LineSink):
    """The sink when none is installed: ``liquidity.progress`` INFO lines."""

    def __init__(self):
        super().__init__(log.info)
        self._start = self._last = float("-inf")  # the first event is logged at once

    def _emit(self, text: str) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._every:
                return
            self._last = now
        log.info("%s", text)


_default = _LogDefault()
_sink: Sink | None = None
_current: ContextVar[Task | None] = ContextVar("liquidity_progress_task", default=None)


def _listener() -> Sink | None:
    if _sink is not None:
        return None if _sink is SILENT else _sink
    return _default if log.isEnabledFor(logging.INFO) else None


@contextlib.contextmanager
def listen(sink: Sink) -> Iterator[Sink]:
    """Send progress events to ``sink`` inside the ``with`` block (then close it)."""
    global _sink
    previous, _sink = _sink, sink
    try:
        yield sink
    finally:
        _sink = previous
        sink.close()


@contextlib.contextmanager
def task(name: str, *, total: float | None = None, unit: str = "bytes") -> Iterator[Task | None]:
    """A unit of work: yields its :class:`Task` (None when nobody listens)."""
    sink = _listener()
    if sink is None:
        yield None
        return
    current = Task(name=name, total=total, unit=unit)
    token = _current.set(current)
    sink.task_started(current)
    try:
        yield current
    finally:
        _current.reset(token)
        sink.task_finished(current)


def update(*, done: float | None = None, rows: int | None = None) -> None:
    """How far the current :func:`task` got (absolute values); cheap with no task."""
    current = _current.get()
    if current is None:
        return
    if done is not None:
        current.done = done
    if rows is not None:
        current.rows = rows
    sink = _listener()
    if sink is not None:
        sink.task_updated(current)


def stage(name: str) -> None:
    """A named stage of a longer job starts."""
    sink = _listener()
    if sink is not None:
        sink.stage(name)


def step(message: str) -> None:
    """One result within the current stage (a fold's score)."""
    sink = _listener()
    if sink is not None:
        sink.step(message)
