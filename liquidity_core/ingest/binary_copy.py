"""PostgreSQL binary COPY data for canonical rows, encoded a chunk at a time with numpy.

The layout of the bytes is in the comment below; :mod:`.copy` and :mod:`.stream` send
them with :func:`.copy_io.copy_stream`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from liquidity_core.ingest.copy_io import ChunkStream, made_ahead
from liquidity_core.store.schema import TS, market_snapshots


def extras_json(rows: pd.DataFrame) -> np.ndarray:
    """``{"name": value, ...}`` per row from the ``x_*`` columns (None when there are none)."""
    body = None
    for col in [c for c in rows.columns if c.startswith("x_")]:
        values = rows[col].to_numpy(dtype=float)
        ok = ~np.isnan(values)
        frag = np.full(len(rows), "", dtype=object)
        frag[ok] = f'"{col[2:]}": ' + values[ok].astype(str).astype(object)
        if body is None:
            body = frag
        else:
            both = (body != "") & (frag != "")
            body = np.where(both, body + ", " + frag, body + frag)
    out = np.full(len(rows), None, dtype=object)
    if body is not None:
        has = body != ""
        out[has] = "{" + body[has] + "}"
    return out


# --- PostgreSQL binary COPY ------------------------------------------------------------------
#
# Each row is: int16 field count, then per field int32 length (-1 = NULL) and the bytes:
# float8 and int8 big-endian, timestamptz as int64 microseconds since 2000-01-01 UTC, text
# as UTF-8. Rows are encoded a chunk at a time with numpy, never per row in Python: rows
# with the same layout (which numbers are NULL, and the length of their text cells, which
# repeat per coin) are written as one (rows x width) byte matrix, column block by column
# block. COPY does not depend on row order, so the rows go out grouped by layout.


def _binary_kind(column: sa.Column) -> str:
    if isinstance(column.type, sa.Double):
        return "f8"
    if column.type is TS:
        return "ts"
    return "i8" if isinstance(column.type, sa.Integer) else "text"


_KIND_ORDER = ("f8", "ts", "i8", "text")
#: Column order of the binary COPY statements (sql/queries/ingest_*copy*.postgresql.sql):
#: ``market_snapshots`` grouped by kind (floats, the time, the file id, texts), in table
#: order within each kind; ``tests/unit/store/test_schema.py`` checks the files against it.
BINARY_COLUMNS = tuple(
    c.name
    for c in sorted(market_snapshots.columns, key=lambda c: _KIND_ORDER.index(_binary_kind(c)))
)
_BINARY_KIND = {c.name: _binary_kind(c) for c in market_snapshots.columns}
_FLOATS = tuple(c for c in BINARY_COLUMNS if _BINARY_KIND[c] == "f8")
#: The text cells, in COPY order; with NULL-able ``extras`` they repeat per coin.
_TEXTS = tuple(c for c in BINARY_COLUMNS if _BINARY_KIND[c] == "text")
_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_PG_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_LEN8 = np.frombuffer(b"\x00\x00\x00\x08", dtype=np.uint8)
_PG_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")


def _text_cell(value) -> bytes:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return _NULL
    data = str(value).encode("utf-8")
    return len(data).to_bytes(4, "big") + data


def _fixed(values: np.ndarray, kind: str) -> np.ndarray:
    """(n, 12) bytes: length 8, then the big-endian value."""
    out = np.empty((len(values), 12), dtype=np.uint8)
    out[:, :4] = _LEN8
    out[:, 4:] = values.astype(">" + kind).view(np.uint8).reshape(len(values), 8)
    return out


def _encode_binary_rows(rows: pd.DataFrame, *, file_id: int | None, line: bool) -> bytes:
    """The binary COPY bytes of ``rows`` (canonical frame; see the comment above)."""
    n = len(rows)
    if not n:
        return b""
    floats = [rows[c].to_numpy(dtype=float) for c in _FLOATS]
    null = np.column_stack([np.isnan(f) for f in floats])
    pattern = null.astype(np.int64) @ (1 << np.arange(len(_FLOATS), dtype=np.int64))
    micros = (
        (rows["snapshot_ts"].dt.as_unit("us") - _PG_EPOCH) // pd.Timedelta(microseconds=1)
    ).to_numpy(dtype=np.int64)
    # The text cells (coin_id, coin_name, symbol, extras) of each distinct combination.
    text = pd.DataFrame(
        {c: extras_json(rows) if c == "extras" else rows[c].to_numpy(dtype=object) for c in _TEXTS}
    )
    combo = text.groupby(list(text.columns), sort=False, dropna=False).ngroup().to_numpy()
    firsts = np.unique(combo, return_index=True)[1]
    tails = [b"".join(map(_text_cell, values)) for values in text.to_numpy()[firsts]]
    tail_len = np.array([len(t) for t in tails], dtype=np.int64)
    n_fields = len(_FLOATS) + 1 + (file_id is not None) + len(_TEXTS) + line
    head = np.frombuffer(n_fields.to_bytes(2, "big"), dtype=np.uint8)
    key = pattern * (int(tail_len.max()) + 1) + tail_len[combo]
    out = []
    for k in np.unique(key):
        idx = np.flatnonzero(key == k)
        nulls = null[idx[0]]
        width = 2 + sum(4 if z else 12 for z in nulls) + 12 * (1 + (file_id is not None) + line)
        size = int(tail_len[combo[idx[0]]])
        block = np.empty((len(idx), width + size), dtype=np.uint8)
        block[:, :2] = head
        pos = 2
        for values, z in zip(floats, nulls, strict=True):
            if z:
                block[:, pos : pos + 4] = 0xFF
                pos += 4
            else:
                block[:, pos : pos + 12] = _fixed(values[idx], "f8")
                pos += 12
        block[:, pos : pos + 12] = _fixed(micros[idx], "i8")
        pos += 12
        if file_id is not None:
            block[:, pos : pos + 12] = _fixed(np.array([file_id], dtype=np.int64), "i8")
            pos += 12
        codes, inverse = np.unique(combo[idx], return_inverse=True)
        matrix = np.frombuffer(b"".join(tails[c] for c in codes), dtype=np.uint8)
        block[:, pos : pos + size] = matrix.reshape(len(codes), size)[inverse.ravel()]
        pos += size
        if line:
            block[:, pos : pos + 12] = _fixed(rows["line"].to_numpy(dtype=np.int64)[idx], "i8")
        out.append(block.tobytes())
    return b"".join(out)


def binary_stream_of(frames, *, file_id: int | None, line: bool = False, chunk_rows=100_000):
    """A readable file of binary COPY data for the rows of ``frames`` (an iterable of
    canonical frames), encoded chunk by chunk by a thread a few chunks ahead of COPY
    (:func:`made_ahead`), so parsing the next piece overlaps the server storing this one."""

    def chunks():
        yield _PG_HEADER
        for rows in frames:
            for lo in range(0, len(rows), chunk_rows):
                yield _encode_binary_rows(
                    rows.iloc[lo : lo + chunk_rows], file_id=file_id, line=line
                )
        yield _PG_TRAILER

    return ChunkStream(made_ahead(chunks()))
