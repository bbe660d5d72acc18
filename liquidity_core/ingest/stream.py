"""Loading a big file into PostgreSQL a piece at a time, in the file's one transaction.

A file larger than :data:`PIECE_BYTES` is never held whole. It is cut at record
boundaries (a line end outside quotes) into pieces; each piece, with the header in front,
is parsed and checked by :func:`.reader.parse_csv` like a small file, its line numbers
moved to the file's, and its good rows are sent to the database as they are encoded, so
parsing overlaps the server's work. Memory is bounded by the piece (and the rejected
rows, which are kept to be stored), not by the file.

The guarantees are those of a small file (:mod:`.pipeline`): one transaction holds the
ledger row, every good row and every rejected row, so a crash or kill leaves all of it or
none of it. The fast path is one binary COPY straight into ``market_snapshots`` inside a
savepoint, taken when nothing is stored in the first piece's time span. When a key is
already stored, or a (coin, time) comes twice in the file across pieces, the COPY fails
with a unique violation; the savepoint is rolled back and the file is read again into a
staging table with line numbers, where later repeats of a (coin, time) are rejected as
duplicates of the first line (as within one piece) and the rest is upserted with ``ON
CONFLICT DO NOTHING``.

Files whose changes are derived from earlier rows (daily OHLCV history), with a header
spanning lines, or with bare carriage returns as line ends are read whole, as are files
on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from liquidity_core import progress
from liquidity_core.inputs.formats import FileRejected
from liquidity_core.inputs.reader import ParsedFile, parse_csv
from liquidity_core.store import db
from liquidity_core.store.snapshots import format_ts

#: Files larger than this are loaded a piece of about this size at a time. A piece is
#: parsed whole before its first rows are sent, so the server waits while a big one is
#: parsed (16 MB against 32: docs/performance.md, "The re-run of 2026-12-08").
PIECE_BYTES = 16 << 20
#: ... except the first piece, which is read before the COPY starts.
FIRST_PIECE_BYTES = 2 << 20
_LINE_BREAKS = re.compile(rb"\r\n|\r|\n")
_TEXT_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def wants_pieces(size: int) -> bool:
    """Whether a file of ``size`` bytes is loaded a piece at a time."""
    return size > PIECE_BYTES


class NotStreamable(Exception):
    """The file must be read whole (see the module docstring)."""


@dataclass
class Totals:
    """What the pieces of one file added up to."""

    spec: object = None
    rows_in_file: int = 0
    good: int = 0
    rejected: list = field(default_factory=list)  # DataFrames: line, reason, raw_line
    extra_columns: list = field(default_factory=list)
    ignored_columns: list = field(default_factory=list)

    @property
    def n_rejected(self) -> int:
        return int(sum(len(r) for r in self.rejected))

    def rejected_frame(self) -> pd.DataFrame:
        if not self.rejected:
            return pd.DataFrame({"line": [], "reason": [], "raw_line": []})
        frame = pd.concat(self.rejected, ignore_index=True)
        return frame.sort_values("line", kind="stable").reset_index(drop=True)


def _record_end(buf: bytes, *, open_quote: int = 0) -> int:
    """Position just after the last line end of ``buf`` that is outside quotes (0: none);
    ``open_quote`` 1 when ``buf`` starts inside a quoted field."""
    if b'"' not in buf and not open_quote:
        return buf.rfind(b"\n") + 1
    arr = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    if not len(ends):
        return 0
    quotes = np.cumsum(arr == 34) + open_quote
    outside = ends[quotes[ends] % 2 == 0]
    return int(outside[-1]) + 1 if len(outside) else 0


def _line_count(piece: bytes) -> int:
    if b"\r" not in piece:
        return piece.count(b"\n")
    return len(_LINE_BREAKS.findall(piece))


def pieces(path: Path, *, piece_bytes: int | None = None) -> Iterator[tuple[bytes, bytes, int]]:
    """``(header line, piece, lines before the piece)`` for the file, cut at record ends.

    Raises
    ------
    NotStreamable
        When the header spans lines or line ends are bare carriage returns.
    FileRejected
        For NUL bytes or bytes that are not UTF-8 (offsets are the file's).
    """
    piece_bytes = piece_bytes or PIECE_BYTES
    with open(path, "rb") as f:
        head = f.readline()
        if head.count(b'"') % 2 or (b"\r" in head and not head.endswith(b"\r\n")):
            raise NotStreamable("the header spans lines or ends in a bare carriage return")
        before, offset, rest = 1, len(head), b""
        # A small first piece: it is parsed before the COPY starts (format, span check);
        # the later ones are parsed while the server stores the earlier ones. Each piece
        # is twice the one before, up to ``piece_bytes``, so that the server is not left
        # waiting for one big second piece while it has only the small first one to store.
        size = min(piece_bytes, FIRST_PIECE_BYTES)
        while True:
            block = f.read(size)
            size = min(2 * size, piece_bytes)
            # The cut is found in the block, with the quotes ``rest`` left open, so that
            # the piece is made by one copy, not by joining and then slicing.
            cut = _record_end(block, open_quote=rest.count(b'"') % 2) if block else 0
            if block and cut == 0:
                rest += block
                continue
            piece, rest = rest + memoryview(block)[:cut], block[cut:]
            _check_text(piece, offset)
            if b"\r" in piece and b"\r" in piece.replace(b"\r\n", b""):
                raise NotStreamable("bare carriage returns as line ends")
            yield head, piece, before
            before += _line_count(piece)
            offset += len(piece)
            if not block:
                return


def _check_text(piece: bytes, offset: int) -> None:
    if b"\x00" in piece:
        at = offset + piece.index(b"\x00")
        raise FileRejected(
            f"unreadable encoding: NUL byte at offset {at} "
            "(binary data or UTF-16); expected a UTF-8 text CSV"
        )
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(
            f"unreadable encoding: byte 0x{piece[exc.start]:02x} at offset "
            f"{offset + exc.start} is not UTF-8; expected a UTF-8 text CSV"
        ) from None


def parsed_pieces(
    path: Path, totals: Totals, *, piece_bytes: int | None = None, first: ParsedFile | None = None
):
    """Each piece parsed and checked, line numbers those of the file; ``totals`` updated.

    ``first`` is the first piece already parsed (:func:`first_piece`), used as it is.

    Yields
    ------
    pandas.DataFrame
        The piece's good rows (``parse_csv``'s ``rows``, ``line`` the file's).
    """
    read = 0
    for head, piece, before in pieces(path, piece_bytes=piece_bytes):
        read += len(piece)
        if not piece.strip():
            continue
        if first is not None:
            parsed, first = first, None
        else:
            parsed = parse_csv(head + piece)
        if totals.spec is None:
            if parsed.spec.derive_changes:
                raise NotStreamable(f"{parsed.spec.title} derives changes from earlier rows")
            totals.spec = parsed.spec
        shift = before - 1
        rows = parsed.rows.assign(line=parsed.rows["line"] + shift)
        rejected = parsed.rejected.assign(line=parsed.rejected["line"] + shift)
        if len(rejected):
            totals.rejected.append(rejected)
        totals.rows_in_file += parsed.rows_in_file
        totals.good += len(rows)
        progress.update(done=len(head) + read, rows=totals.rows_in_file)
        for c in parsed.extra_columns:
            if c not in totals.extra_columns:
                totals.extra_columns.append(c)
        for c in parsed.ignored_columns:
            if c not in totals.ignored_columns:
                totals.ignored_columns.append(c)
        yield rows
    totals.ignored_columns = [c for c in totals.ignored_columns if c not in totals.extra_columns]


def first_piece(path: Path, *, piece_bytes: int | None = None) -> ParsedFile:
    """The first piece parsed (format detection and the span check); raises
    :class:`NotStreamable` for formats that must be read whole."""
    for head, piece, _before in pieces(path, piece_bytes=piece_bytes):
        if not piece.strip():
            continue
        parsed = parse_csv(head + piece)
        if parsed.spec.derive_changes:
            raise NotStreamable(f"{parsed.spec.title} derives changes from earlier rows")
        return parsed
    raise NotStreamable("no pieces")


# --- PostgreSQL --------------------------------------------------------------------------


def copy_file(conn: Connection, path: Path, file_id: int, first: ParsedFile, *, piece_bytes=None):
    """Store the file's good rows (see the module docstring); returns ``(inserted, totals)``.

    Runs inside the file's transaction; ``first`` is :func:`first_piece`.
    """
    from liquidity_core.ingest.binary_copy import binary_stream_of
    from liquidity_core.ingest.copy import ANY_STORED_BETWEEN, copied_directly
    from liquidity_core.ingest.copy_io import copy_stream

    conn.exec_driver_sql(db.query("ingest_stage_settings", "postgresql").text)
    rows = first.rows
    if len(rows):
        span = {
            "lo": format_ts(rows["snapshot_ts"].min()),
            "hi": format_ts(rows["snapshot_ts"].max()),
        }
        stored = conn.execute(ANY_STORED_BETWEEN, span).scalar()
    else:
        stored = True
    if not stored:
        totals = Totals()
        direct = db.query("ingest_copy_direct", "postgresql").text
        pieces = parsed_pieces(path, totals, piece_bytes=piece_bytes, first=first)
        if copied_directly(
            conn, lambda: copy_stream(conn, direct, binary_stream_of(pieces, file_id=file_id))
        ):
            return totals.good, totals
    totals = Totals()
    conn.exec_driver_sql(db.query("ingest_stage_lines_create", "postgresql").text)
    copy_stream(
        conn,
        db.query("ingest_stage_lines_copy", "postgresql").text,
        binary_stream_of(
            parsed_pieces(path, totals, piece_bytes=piece_bytes), file_id=None, line=True
        ),
    )
    dups = conn.execute(db.query("ingest_stage_repeats", "postgresql")).fetchall()
    if dups:
        lines = [int(r[0]) for r in dups]
        conn.execute(db.query("ingest_stage_drop_lines", "postgresql"), {"lines": lines})
        raw = raw_lines_at(path, lines)
        totals.rejected.append(
            pd.DataFrame(
                {
                    "line": lines,
                    "reason": [f"duplicate of line {int(r[1])} (same coin and time)" for r in dups],
                    "raw_line": [raw.get(n, "") for n in lines],
                }
            )
        )
        totals.good -= len(dups)
    inserted = conn.execute(
        db.query("ingest_stage_upsert", "postgresql"), {"file_id": file_id}
    ).rowcount
    conn.exec_driver_sql("DROP TABLE ingest_stage")
    return int(inserted), totals


def raw_lines_at(path: Path, numbers, *, limit: int = 2000) -> dict[int, str]:
    """The text of the given line numbers (1 = header), read a piece at a time."""
    wanted = set(int(n) for n in numbers)
    out: dict[int, str] = {}
    for _head, piece, before in pieces(path):
        text = piece.decode("utf-8")
        for k, line in enumerate(_TEXT_LINE_BREAKS.split(text)):
            if before + 1 + k in wanted:
                out[before + 1 + k] = line[:limit]
    return out
