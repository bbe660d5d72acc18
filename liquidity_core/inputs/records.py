"""Prediction input: records (dicts or a frame) in any of the formats, checked like a file.

:func:`normalize_records` picks the format whose columns the records share most, checks
the rows with :func:`.checks.check_frame` and raises one :class:`InputError` that names
every bad row.

:func:`request_columns` gives the same result as plain column arrays, and checks the
usual request (a few JSON rows of numbers and strings) in plain Python: building pandas
frames for one row cost more than the rest of a prediction. Whatever that path does not
cover goes through :func:`normalize_records`; ``tests/unit/inputs/test_request_columns.py``
compares the two on varied inputs, bad ones included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from liquidity_core.inputs.checks import BAD_TEXT, check_frame, parse_distinct_times
from liquidity_core.inputs.formats import (
    CANONICAL_COLUMNS,
    FORMATS,
    NUMERIC_FIELDS,
    REQUIRED_NUMBERS,
    FormatSpec,
    coin_slug,
    extra_name,
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


# --- plain column arrays, and the plain-Python path for small requests ---------------------

#: Most rows :func:`request_columns` checks in plain Python; more go through pandas, whose
#: vectorized checks cost less per row from there on.
PLAIN_ROWS = 16
#: Time-zone-naive "no time" in the int64 nanoseconds of ``snapshot_ts``.
NAT_NS = np.iinfo(np.int64).min
#: Largest integer every float64 holds exactly: beyond it pandas and Python may round
#: differently, so such inputs take the general path.
_EXACT_INT = 2**53
_TIME_TEXT = " is not a date (expected YYYY-MM-DD, an ISO 8601 time or YYYYMMDD, from 1970 to 2262)"
_BELOW_TEXT = " is below -100% (a price cannot fall by more than all of it)"


def frame_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns of a :func:`normalize_records` frame as arrays, ``snapshot_ts`` as
    int64 UTC nanoseconds (:data:`NAT_NS` where missing)."""
    out = {c: frame[c].to_numpy() for c in frame.columns if c != "snapshot_ts"}
    if "snapshot_ts" in frame:
        stamps = frame["snapshot_ts"]
        if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
            stamps = pd.to_datetime(stamps, utc=True)
        out["snapshot_ts"] = pd.DatetimeIndex(stamps).as_unit("ns").asi8
    return {c: out[c] for c in frame.columns}


def request_columns(records, *, require_identity: bool = True) -> tuple[dict, list[dict]]:
    """:func:`normalize_records` as column arrays (see :func:`frame_columns`).

    Up to :data:`PLAIN_ROWS` rows of one format holding only numbers, strings and nulls
    where :func:`normalize_records` would keep them are checked in plain Python, with
    the same results and the same errors; any other input goes through
    :func:`normalize_records`.
    """
    plain = _plain_columns(records, require_identity)
    if plain is not None:
        return plain
    if (
        isinstance(records, list)
        and len(records) > 1
        and all(isinstance(r, Mapping) for r in records)
    ):
        keys = list(records[0])
        if all(list(r) == keys for r in records):  # one format for all: detect it once
            records = pd.DataFrame.from_records(records, columns=keys)
    frame, errors = normalize_records(records, require_identity=require_identity)
    return frame_columns(frame), errors


def _is_number(v) -> bool:
    """A value pandas keeps as a float64 exactly as Python converts it (None: missing)."""
    kind = type(v)
    return v is None or kind is float or (kind is int and -_EXACT_INT <= v <= _EXACT_INT)


def _plain_columns(records, require_identity: bool) -> tuple[dict, list[dict]] | None:
    """The plain-Python path of :func:`request_columns`, or None when it does not apply."""
    if isinstance(records, Mapping):
        records = [records]
    if type(records) is not list or not 0 < len(records) <= PLAIN_ROWS:
        return None
    columns: dict[str, None] = {}  # every key, in order of first appearance
    for rec in records:
        if type(rec) is not dict:
            return None
        for k in rec:
            if type(k) is not str:
                return None
            columns[k] = None
    names = list(columns)
    spec = _records_spec(names)
    if spec.derive_changes or spec.range_from:
        return None
    if any(_records_spec(list(rec)) is not spec for rec in records):
        return None  # more than one group: normalize_records checks each on its own
    folded = {normalize_header(c): c for c in names}
    if len(folded) != len(names):
        return None  # keys that fold to one name
    n = len(records)
    col = {c: [rec.get(c) for rec in records] for c in names}
    for c, values in col.items():
        canon = spec.fields.get(normalize_header(c))
        if canon in ("coin_name", "symbol", "snapshot_ts"):
            ok = all(v is None or type(v) is str for v in values)
        elif canon is not None or not (
            normalize_header(c) in spec.known or c.startswith("_unnamed_")
        ):
            ok = all(_is_number(v) for v in values)  # a loaded number or an extra
        else:  # a documented column that is not loaded: anything but a nested value
            ok = not any(isinstance(v, list | tuple | dict | set) for v in values)
        if not ok:
            return None

    problems: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    user_of = {canon: folded[norm] for norm, canon in spec.fields.items() if norm in folded}
    out: dict[str, np.ndarray] = {}
    coin_ids: list = [None] * n
    for canon in ("coin_name", "symbol"):
        user = user_of.get(canon)
        texts: list = [None] * n
        if user is not None:
            for i, v in enumerate(col[user]):
                if v is None:
                    continue
                v = v.strip().upper() if canon == "symbol" else v.strip()
                if not v:
                    continue
                if BAD_TEXT.search(v) is not None:
                    problems[i].append(
                        (user, f"{v[:60]!r} has a control character or lone surrogate")
                    )
                    texts[i] = False  # bad: None, and not "missing"
                    continue
                texts[i] = v
        if require_identity:
            user = user if user is not None else spec.user_name(canon)
            for i, v in enumerate(texts):
                if v is None:
                    problems[i].append((user, "missing"))
        texts = [v if v else None for v in texts]
        if canon == "coin_name":
            coin_ids = [None if v is None else coin_slug(v) for v in texts]
        out[canon] = np.array(texts + [0], dtype=object)[:-1]  # never a 2-D array
    for canon in NUMERIC_FIELDS:
        out[canon] = _plain_numbers(col, user_of, canon, spec, problems)
    out["snapshot_ts"] = _plain_times(col, user_of, spec, problems, require_identity)
    taken = {"coin_id", *CANONICAL_COLUMNS}
    extras: dict[str, np.ndarray] = {}
    for c in names:
        norm = normalize_header(c)
        if norm in spec.known or c.startswith("_unnamed_"):
            continue
        values = [np.nan if v is None else float(v) for v in col[c]]
        name = extra_name(c)
        if all(v != v for v in values) or name in taken:
            continue  # nothing given, or the name is taken: ignored
        for i, v in enumerate(values):
            if v in (np.inf, -np.inf):
                problems[i].append((c, f"{v:g} is not finite"))
                values[i] = np.nan
        extras[name] = np.array(values, dtype=float)
        taken.add(name)
    columns_out = {"coin_id": np.array(coin_ids + [0], dtype=object)[:-1]}
    columns_out.update((c, out[c]) for c in CANONICAL_COLUMNS)
    columns_out.update(extras)
    errors = [
        {"index": i, "field": field, "problem": problem}
        for i, found in enumerate(problems)
        for field, problem in found
    ]
    return columns_out, errors


def _plain_numbers(col: dict, user_of: dict, canon: str, spec: FormatSpec, problems) -> np.ndarray:
    """One numeric field as :func:`.checks.check_frame` makes it, from plain numbers."""
    n = len(problems)
    required = canon in REQUIRED_NUMBERS
    user = user_of.get(canon)
    if user is None:
        if required:
            name = spec.user_name(canon)
            for found in problems:
                found.append((name, "missing"))
        return np.full(n, np.nan)
    values = [np.nan if v is None else float(v) for v in col[user]]
    for i, v in enumerate(values):
        if v != v:
            if required:
                problems[i].append((user, "missing"))
        elif v in (np.inf, -np.inf):
            problems[i].append((user, f"{v:g} is not finite"))
            values[i] = np.nan
        elif required:
            if v < 0:
                problems[i].append((user, f"{v:g} is negative"))
        else:
            shown = v
            if spec.percent:
                v = values[i] = v / 100.0
            if v < -1:
                unit = "%" if spec.percent else ""
                problems[i].append((user, f"{shown:g}{unit}{_BELOW_TEXT}"))
                values[i] = np.nan
    return np.array(values, dtype=float)


def _plain_times(col: dict, user_of: dict, spec, problems, require: bool) -> np.ndarray:
    """``snapshot_ts`` as :func:`.checks.check_frame` makes it, in int64 UTC nanoseconds."""
    n = len(problems)
    user = user_of.get("snapshot_ts")
    if user is None:
        if require:
            name = spec.user_name("snapshot_ts")
            for found in problems:
                found.append((name, "missing"))
        return np.full(n, NAT_NS, dtype=np.int64)
    raw = col[user]
    texts = [None if v is None else v.strip() for v in raw]
    distinct = list(dict.fromkeys(t for t in texts if t is not None))
    parsed = parse_distinct_times(distinct).as_unit("ns").asi8 if distinct else []
    at = dict(zip(distinct, parsed, strict=True))
    out = np.full(n, NAT_NS, dtype=np.int64)
    for i, t in enumerate(texts):
        if not t:  # missing: no value or only spaces
            if require:
                problems[i].append((user, "missing"))
            continue
        out[i] = at[t]
        if out[i] == NAT_NS:
            problems[i].append((user, f"{raw[i][:60]!r}{_TIME_TEXT}"))
    return out
