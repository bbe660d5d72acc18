"""Prediction input: records (dicts or a frame) in any of the formats, checked like a file.

:func:`normalize_records` picks the format whose columns the records share most, checks
the rows with :func:`.checks.check_frame` and raises one :class:`InputError` that names
every bad row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from liquidity_core.inputs.checks import check_frame
from liquidity_core.inputs.formats import (
    CANONICAL_COLUMNS,
    FORMATS,
    NUMERIC_FIELDS,
    FormatSpec,
    normalize_header,
)


def _records_spec(columns: Sequence[str]) -> FormatSpec:
    present = {normalize_header(c) for c in columns}
    scores = [(len(s.known & present), -i) for i, s in enumerate(FORMATS)]
    return FORMATS[-max(scores)[1]]


def normalize_records(
    records,
    *,
    require_identity: bool = True,
) -> tuple[pd.DataFrame, list[dict]]:
    """Normalize rows given in any accepted format's column names.

    Parameters
    ----------
    records : list of dict or pandas.DataFrame
        Rows keyed by column names of one of the formats (case/space-insensitive):
        CoinGecko fractions, CoinMarketCap percents (``$`` and ``,`` allowed) or OHLCV
        closes. Unknown numeric fields become ``x_<name>`` columns.
    require_identity : bool, default=True
        Whether coin, symbol and date are required (prediction input: pass ``False``).

    Returns
    -------
    frame : pandas.DataFrame
        One row per record, index ``0..n-1``, columns ``coin_id`` + :data:`CANONICAL_COLUMNS`
        (changes as fractions, ``snapshot_ts`` UTC) + ``x_*`` extras. Bad values are NaN.
    errors : list of dict
        ``{"index": i, "field": "<the user's field name>", "problem": "..."}`` for every
        missing required field, non-numeric, negative or non-finite value.

    Examples
    --------
    >>> frame, errors = normalize_records(
    ...     [{"Price": "$1,000", "Volume (24h)": "5", "Market Cap": "50", "% 24h": "2"}],
    ...     require_identity=False)
    >>> float(frame.loc[0, "price"]), float(frame.loc[0, "change_24h"]), errors
    (1000.0, 0.02, [])
    """
    errors: list[dict] = []
    if isinstance(records, pd.DataFrame):
        groups = [(np.arange(len(records)), records.reset_index(drop=True))]
    else:
        if isinstance(records, Mapping):
            records = [records]
        records = list(records)
        by_spec: dict[str, list[int]] = {}
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                errors.append({"index": i, "field": "", "problem": "is not an object"})
                records[i] = rec = {}
            by_spec.setdefault(_records_spec([str(k) for k in rec]).name, []).append(i)
        groups = []
        for positions in by_spec.values():
            rows = [{str(k): v for k, v in records[i].items()} for i in positions]
            groups.append(
                (
                    np.array(positions, dtype=np.int64),
                    pd.DataFrame.from_records(rows, index=pd.RangeIndex(len(rows))),
                )
            )
    frames = []
    for positions, raw in groups:
        # Columns that hold only numbers (the usual JSON body) keep or get a numeric
        # dtype, so check_frame takes its numeric path instead of parsing them as text.
        raw = _coalesce_folded(
            _drop_nested(raw.infer_objects(), positions, errors), positions, errors
        )
        checked = check_frame(
            raw, _records_spec(list(raw.columns)), require_identity=require_identity
        )
        p = checked.problems
        errors.extend(
            {"index": int(positions[i]), "field": str(f), "problem": str(t)}
            for i, f, t in zip(p["position"], p["field"], p["problem"], strict=True)
        )
        frames.append(checked.frame.set_axis(positions))
    errors.sort(key=lambda e: e["index"])
    if not frames:
        empty = pd.DataFrame(columns=["coin_id", *CANONICAL_COLUMNS])
        return empty.astype({c: float for c in NUMERIC_FIELDS}), errors
    frame = pd.concat(frames).sort_index() if len(frames) > 1 else frames[0]
    return frame.reset_index(drop=True), errors


def _drop_nested(raw: pd.DataFrame, positions: np.ndarray, errors: list) -> pd.DataFrame:
    """A list or object where one value belongs is an error; the value is dropped."""
    for col in raw.columns:
        if raw[col].dtype != object:  # numbers and strings only: nothing nested
            continue
        nested = raw[col].map(lambda v: isinstance(v, (list, tuple, dict, set))).to_numpy(bool)
        if nested.any():
            errors.extend(
                {
                    "index": int(positions[i]),
                    "field": str(col),
                    "problem": "must be a single value, not a list or object",
                }
                for i in np.flatnonzero(nested)
            )
            raw[col] = raw[col].where(~nested, None)
    return raw


def _coalesce_folded(raw: pd.DataFrame, positions: np.ndarray, errors: list) -> pd.DataFrame:
    """Merge keys that fold to the same name (``Price``/``price``); both set is an error."""
    raw.columns = [str(c) for c in raw.columns]
    folded: dict[str, list[str]] = {}
    for col in raw.columns:
        folded.setdefault(normalize_header(col), []).append(col)
    for cols in folded.values():
        if len(cols) < 2:
            continue
        both = raw[cols].notna().sum(axis=1).to_numpy() > 1
        problem = f"given twice (also as {cols[0]!r})"
        errors.extend(
            {"index": int(positions[i]), "field": cols[1], "problem": problem}
            for i in np.flatnonzero(both)
        )
        merged = raw[cols[0]]
        for other in cols[1:]:
            merged = merged.where(merged.notna(), raw[other])
        raw = raw.drop(columns=cols[1:]).assign(**{cols[0]: merged})
    return raw
