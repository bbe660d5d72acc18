"""Feeding PostgreSQL ``COPY ... FROM STDIN``: a readable file over byte chunks, the chunks
made by a thread a few ahead of the reader, and the COPY itself (the driver's C code kept
off stderr).
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import queue
import tempfile
import threading
from contextlib import contextmanager, suppress

from sqlalchemy.engine import Connection

log = logging.getLogger("liquidity_core.ingest")


class ChunkStream(io.RawIOBase):
    """A readable file over an iterator of byte chunks, made as the reader (COPY) asks."""

    def __init__(self, chunks):
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self.error: BaseException | None = None  # what making a chunk raised

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not len(self._pending):
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:  # the driver reports it as a failed COPY
                self.error = exc
                raise
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def copy_stream(conn: Connection, sql: str, buf) -> None:
    # Bytes, in 1 MiB reads: fewer round trips than the 8 KiB default.
    cursor = conn.connection.driver_connection.cursor()
    try:
        with _c_stderr_to_log():
            cursor.copy_expert(sql, buf, size=1 << 20)
    except Exception:
        if getattr(buf, "error", None) is not None:  # e.g. a piece of the file was rejected
            raise buf.error from None
        raise
    finally:
        cursor.close()


@contextmanager
def _c_stderr_to_log():
    """Send what C code writes to stderr meanwhile to the log instead.

    When the server ends the connection in the middle of a COPY, psycopg2 prints a
    ``SystemError`` from its C code straight to stderr before raising the real error
    (which :func:`.pipeline._storage_error` turns into one line). The CLI promises one line.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said = sink.read().decode("utf-8", "replace").strip()
            if said:
                log.debug("the database driver printed during COPY: %s", said)


#: Chunks :func:`made_ahead` may hold ready (about 10 MB each at 100,000 rows).
AHEAD_CHUNKS = 4


def made_ahead(items, depth: int = AHEAD_CHUNKS):
    """``items``, made by a thread at most ``depth`` ahead of the reader.

    COPY reads in the caller's thread, and the driver releases the GIL while it waits on
    the socket, so the next chunks are parsed and encoded while the server stores the
    sent ones: without this, a chunk was made only once the server had taken the one
    before. An error in the thread is raised here, in order; when the reader stops early
    (a failed COPY) the thread stops after the item it is making.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            with suppress(queue.Full):
                ready.put(entry, timeout=0.1)
                return True
        return False

    def make() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the reader, raised in its thread
            put(("error", exc))

    # The caller's context goes along, so the pieces' progress reaches its progress task.
    context = contextvars.copy_context()
    maker = threading.Thread(target=context.run, args=(make,), name="copy-encode", daemon=True)
    maker.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        maker.join()
