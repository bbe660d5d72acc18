"""The three input formats: header detection, row checks and canonical columns.

A CSV drop is recognised from its header (case-, space- and underscore-insensitive):

========================  =====================================================================
format                    header (``?`` = optional)
========================  =====================================================================
CoinGecko snapshot        coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date
CoinMarketCap export      Rank?,Name,Symbol,Market Cap,Price,Circulating Supply?,Volume (24h),
                          % 1h,% 24h,% 7d,snapshot_date
daily OHLCV history       SNo?,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap
========================  =====================================================================

Every format is turned into the same canonical columns (:data:`CANONICAL_COLUMNS`):
changes become fractions (CoinMarketCap percents are divided by 100, OHLCV changes are
derived per coin from the closes of the previous day and of seven days before),
timestamps become UTC, and any extra numeric column ``Foo Bar`` becomes ``x_foo_bar``.

All checks are vectorized (pandas/numpy), so a million-row file is checked in seconds.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
import unicodedata
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError

#: Canonical columns, in order, of every normalized frame (``x_*`` extras follow).
CANONICAL_COLUMNS = (
    "coin_name",
    "symbol",
    "price",
    "change_1h",
    "change_24h",
    "change_7d",
    "volume_24h",
    "market_cap",
    "snapshot_ts",
)
NUMERIC_FIELDS = ("price", "change_1h", "change_24h", "change_7d", "volume_24h", "market_cap")
CHANGE_FIELDS = ("change_1h", "change_24h", "change_7d")
REQUIRED_NUMBERS = ("price", "volume_24h", "market_cap")
IDENTITY_FIELDS = ("coin_name", "symbol", "snapshot_ts")

#: Cell values that mean "no value" in a numeric column.
MISSING_TOKENS = (
    "",
    "NA",
    "N/A",
    "n/a",
    "na",
    "NaN",
    "nan",
    "NAN",
    "null",
    "NULL",
    "Null",
    "None",
    "none",
    "-",
    "\u2014",
)
_MISSING_LOWER = frozenset(t.lower() for t in MISSING_TOKENS)


class FileRejected(InputError):
    """A whole file cannot be loaded (unknown header, no rows, unreadable bytes).

    The message names what is wrong and what was expected; the ingest ledger records the
    file as quarantined with this message.
    """


@functools.lru_cache(maxsize=4096)  # the same few dozen names, on every request
def normalize_header(name: object) -> str:
    """Fold a column name for matching: lower case, no whitespace, no underscores.

    Examples
    --------
    >>> normalize_header(" Market Cap ")
    'marketcap'
    >>> normalize_header("24h_volume")
    '24hvolume'
    """
    return re.sub(r"[\s_]+", "", str(name).replace("\ufeff", "")).lower()


@dataclass(frozen=True)
class FormatSpec:
    """One accepted input format.

    Attributes
    ----------
    name : str
        Short name stored in ``ingest_files.file_format``.
    title : str
        Human name used in messages.
    header : tuple of str
        The documented header; names ending in ``?`` are optional.
    fields : dict
        Normalized header name -> canonical field.
    percent : bool
        Changes are percents (divided by 100).
    money : bool
        Numbers may carry ``$``, ``,`` and ``%``.
    derive_changes : bool
        24h/7d changes are derived from closes (OHLCV).
    """

    name: str
    title: str
    header: tuple[str, ...]
    fields: dict
    percent: bool = False
    money: bool = False
    derive_changes: bool = False

    @functools.cached_property  # frozen: computed once, on every request otherwise
    def required(self) -> frozenset[str]:
        """Normalized names a header must contain."""
        return frozenset(normalize_header(h) for h in self.header if not h.endswith("?"))

    @functools.cached_property
    def known(self) -> frozenset[str]:
        """Normalized names of every documented column (loaded or not)."""
        return frozenset(normalize_header(h.rstrip("?")) for h in self.header)

    @property
    def expected(self) -> str:
        """The documented header as text."""
        return ",".join(self.header)

    def user_name(self, canonical: str) -> str:
        """The documented header name of a canonical field."""
        for h in self.header:
            if self.fields.get(normalize_header(h.rstrip("?"))) == canonical:
                return h.rstrip("?")
        return canonical


COINGECKO = FormatSpec(
    name="coingecko",
    title="CoinGecko snapshot",
    header=("coin", "symbol", "price", "1h", "24h", "7d", "24h_volume", "mkt_cap", "date"),
    fields={
        "coin": "coin_name",
        "symbol": "symbol",
        "price": "price",
        "1h": "change_1h",
        "24h": "change_24h",
        "7d": "change_7d",
        "24hvolume": "volume_24h",
        "mktcap": "market_cap",
        "date": "snapshot_ts",
    },
)
CMC = FormatSpec(
    name="cmc",
    title="CoinMarketCap export",
    header=(
        "Rank?",
        "Name",
        "Symbol",
        "Market Cap",
        "Price",
        "Circulating Supply?",
        "Volume (24h)",
        "% 1h",
        "% 24h",
        "% 7d",
        "snapshot_date",
    ),
    fields={
        "name": "coin_name",
        "symbol": "symbol",
        "marketcap": "market_cap",
        "price": "price",
        "volume(24h)": "volume_24h",
        "%1h": "change_1h",
        "%24h": "change_24h",
        "%7d": "change_7d",
        "snapshotdate": "snapshot_ts",
    },
    percent=True,
    money=True,
)
OHLCV = FormatSpec(
    name="ohlcv",
    title="daily OHLCV history",
    header=(
        "SNo?",
        "Name",
        "Symbol",
        "Date",
        "High",
        "Low",
        "Open",
        "Close",
        "Volume",
        "Marketcap",
    ),
    fields={
        "name": "coin_name",
        "symbol": "symbol",
        "date": "snapshot_ts",
        "close": "price",
        "volume": "volume_24h",
        "marketcap": "market_cap",
    },
    derive_changes=True,
)
#: The accepted formats, in detection order.
FORMATS = (COINGECKO, CMC, OHLCV)


def expected_formats_text() -> str:
    """One line listing every accepted header (used in quarantine reasons)."""
    return "; ".join(f"{s.title} ({s.expected})" for s in FORMATS)


def detect_format(header: Sequence[str]) -> FormatSpec:
    """Return the format whose required columns ``header`` contains.

    Parameters
    ----------
    header : sequence of str
        Column names as written in the file.

    Returns
    -------
    FormatSpec

    Raises
    ------
    FileRejected
        When no format matches; the message names the closest format, the columns it
        misses and every accepted header.
    """
    present = {normalize_header(h) for h in header}
    matches = [s for s in FORMATS if s.required <= present]
    if matches:
        return max(matches, key=lambda s: len(s.required))
    closest = max(FORMATS, key=lambda s: len(s.required & present) / len(s.required))
    missing = [
        h for h in closest.header if not h.endswith("?") and normalize_header(h) not in present
    ]
    shown = ",".join(str(h) for h in header)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    raise FileRejected(
        f"unknown header {shown!r}: closest is {closest.title}, which also needs "
        f"{', '.join(repr(m) for m in missing)}; expected one of: {expected_formats_text()}"
    )


# --- slugs ----------------------------------------------------------------------------------


#: Text no name or symbol may hold: C0 controls but tab/line breaks, DEL, lone surrogates.
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def coin_slug(name: str) -> str:
    """A stable id for a coin name: ASCII, lower case, runs of other characters as ``-``.

    Names without any ASCII letter or digit get ``coin-`` plus a hash of the name.

    Examples
    --------
    >>> coin_slug("Pundi X [OLD]")
    'pundi-x-old'
    """
    folded = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    if not slug:
        slug = "coin-" + hashlib.sha1(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return slug


def extra_name(column: str) -> str:
    """Canonical name of an extra numeric column: ``"Sentiment Score"`` -> ``x_sentiment_score``."""
    folded = unicodedata.normalize("NFKD", str(column)).encode("ascii", "ignore").decode()
    return "x_" + (re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_") or "extra")


# --- vectorized checks ----------------------------------------------------------------------


@dataclass
class _Problems:
    """Problems found so far, as parallel lists of arrays (row positions, field, text)."""

    positions: list = field(default_factory=list)
    fields: list = field(default_factory=list)
    texts: list = field(default_factory=list)

    def add(self, mask: np.ndarray, user_field: str, text) -> None:
        """Record ``text`` (a string, or a function of the row positions) where ``mask``."""
        pos = np.flatnonzero(mask)
        if not len(pos):
            return
        self.positions.append(pos)
        self.fields.append(np.full(len(pos), user_field, dtype=object))
        if isinstance(text, str):
            self.texts.append(np.full(len(pos), text, dtype=object))
        else:
            self.texts.append(np.asarray(text(pos), dtype=object))

    def frame(self) -> pd.DataFrame:
        if not self.positions:
            return pd.DataFrame(
                {
                    "position": np.array([], dtype=np.int64),
                    "field": np.array([], dtype=object),
                    "problem": np.array([], dtype=object),
                }
            )
        out = pd.DataFrame(
            {
                "position": np.concatenate(self.positions),
                "field": np.concatenate(self.fields),
                "problem": np.concatenate(self.texts),
            }
        )
        return out.sort_values("position", kind="stable").reset_index(drop=True)


def _as_text(s: pd.Series) -> pd.Series:
    """Values as strings with real missing values as NA."""
    if pd.api.types.is_string_dtype(s) and s.dtype != object:
        return s
    return s.astype("string")


def _clean_text(s: pd.Series, *, upper: bool = False):
    """Stripped text (object array, None when empty), the empty mask, codes and uniques.

    The string work runs once per distinct value, so a million rows of a few thousand
    coin names cost little more than the hashing, and plain Python on the distinct
    values keeps a one-row request free of pandas' per-call overhead. ``uniques[codes]``
    gives the cleaned text back (code -1 for NA).
    """
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    u = [str(v).strip() for v in uniques]
    u = np.array([v.upper() for v in u] if upper else u, dtype=object)
    u_empty = np.append(u == "", True)  # code -1 (NA) is empty
    values = np.append(u, None)[codes]
    empty = u_empty[codes]
    values[empty] = None
    return values, empty, codes, u


def _numbers(s: pd.Series, *, money: bool) -> tuple[np.ndarray, np.ndarray, pd.Series | None]:
    """Parse a column: (values, missing mask, bad mask-or-None as a text Series for messages).

    Returns values (float64, NaN where missing or bad), the missing mask, and a Series
    holding the original text where the value is not a number (NA elsewhere).
    """
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        return values, np.isnan(values), None
    text = _as_text(s)
    stripped = text.str.strip()
    missing = (stripped.isna() | stripped.str.lower().isin(_MISSING_LOWER)).to_numpy(bool)
    clean = stripped
    if money:
        clean = clean.str.replace(r"[$,%\s]", "", regex=True)
    clean = clean.where(~missing)
    values = pd.to_numeric(clean, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~missing & np.isnan(values)
    bad_text = text.where(pd.Series(bad, index=s.index)) if bad.any() else None
    return values, missing, bad_text


def _shown(values: np.ndarray, suffix: str):
    """Message builder: each value at the given positions, then ``suffix``."""
    return lambda pos: [f"{float(v):g}{suffix}" for v in values[pos]]


def _shown_text(text, suffix: str):
    """Message builder: each original text (quoted) at the given positions, then ``suffix``."""
    return lambda pos: [f"{str(v)[:60]!r}{suffix}" for v in np.asarray(text, dtype=object)[pos]]


@dataclass
class Checked:
    """Result of checking a frame: canonical values for every row plus the problems."""

    frame: pd.DataFrame  # canonical columns + coin_id + x_* extras, one row per input row
    problems: pd.DataFrame  # position, field (user's name), problem
    extra_columns: list[str]  # user names of the numeric extras kept
    ignored_columns: list[str]  # user names of columns neither known nor numeric


def check_frame(
    raw: pd.DataFrame,
    spec: FormatSpec,
    *,
    require_identity: bool = True,
) -> Checked:
    """Check every row of ``raw`` (columns named as the user wrote them) against ``spec``.

    Parameters
    ----------
    raw : pandas.DataFrame
        Input rows; column names in any case/spacing of ``spec.header``.
    spec : FormatSpec
        The detected format.
    require_identity : bool, default=True
        Whether coin, symbol and date must be present (prediction input may omit them).

    Returns
    -------
    Checked
        ``frame`` has one row per input row (NaN where a value is missing or bad);
        ``problems`` lists each problem with the user's field name.
    """
    n = len(raw)
    index = raw.index
    probs = _Problems()
    by_norm: dict[str, str] = {}
    for col in raw.columns:
        by_norm.setdefault(normalize_header(col), col)
    user_of = {canon: by_norm[norm] for norm, canon in spec.fields.items() if norm in by_norm}
    out: dict[str, object] = {}

    # Identity: coin name and symbol.
    for canon in ("coin_name", "symbol"):
        user = user_of.get(canon, spec.user_name(canon))
        if canon in user_of:
            text, empty, codes, uniques = _clean_text(raw[user_of[canon]], upper=canon == "symbol")
            u_bad = np.array([_BAD_TEXT.search(u) is not None for u in uniques], dtype=bool)
            bad = np.append(u_bad, False)[codes]
            probs.add(bad, user, _shown_text(text, " has a control character or lone surrogate"))
            text[bad], empty, uniques = None, empty | bad, np.where(u_bad, "", uniques)
            if canon == "coin_name":
                slugs = np.array([coin_slug(u) for u in uniques] + [None], dtype=object)
                coin_ids = slugs[codes]
                coin_ids[empty] = None
        else:
            text = np.full(n, None, dtype=object)
            empty, bad = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
            if canon == "coin_name":
                coin_ids = np.full(n, None, dtype=object)
        if require_identity:
            probs.add(empty & ~bad, user, "missing")
        out[canon] = pd.Series(text, index=index, dtype=object)

    # Numbers.
    for canon in NUMERIC_FIELDS:
        user = user_of.get(canon, spec.user_name(canon))
        if canon not in user_of:
            values = np.full(n, np.nan)
            if canon in REQUIRED_NUMBERS:
                probs.add(np.ones(n, dtype=bool), user, "missing")
            out[canon] = values
            continue
        values, missing, bad_text = _numbers(raw[user_of[canon]], money=spec.money)
        if canon in REQUIRED_NUMBERS:
            probs.add(missing, user, "missing")
        if bad_text is not None:
            probs.add(bad_text.notna().to_numpy(), user, _shown_text(bad_text, " is not a number"))
        with np.errstate(invalid="ignore"):
            infinite = np.isinf(values)
            probs.add(infinite, user, _shown(values, " is not finite"))
            values = np.where(infinite, np.nan, values)
            if canon in REQUIRED_NUMBERS:
                probs.add(values < 0, user, _shown(values, " is negative"))
            else:
                unit = "%" if spec.percent else ""
                shown = values
                if spec.percent:
                    values = values / 100.0
                below = values < -1
                probs.add(
                    below,
                    user,
                    _shown(
                        shown, unit + " is below -100% (a price cannot fall by more than all of it)"
                    ),
                )
                values = np.where(below, np.nan, values)
        out[canon] = values

    # Snapshot time.
    user = user_of.get("snapshot_ts", spec.user_name("snapshot_ts"))
    if "snapshot_ts" in user_of:
        ts, missing, bad = _parse_times(raw[user_of["snapshot_ts"]])
        if require_identity:
            probs.add(missing, user, "missing")
        probs.add(
            bad,
            user,
            _shown_text(
                _as_text(raw[user_of["snapshot_ts"]]),
                " is not a date (expected YYYY-MM-DD, an ISO 8601 time or YYYYMMDD)",
            ),
        )
        out["snapshot_ts"] = ts
    else:
        if require_identity:
            probs.add(np.ones(n, dtype=bool), user, "missing")
        out["snapshot_ts"] = pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]")

    out["coin_id"] = pd.Series(coin_ids, index=index, dtype=object)
    frame = pd.DataFrame({c: out[c] for c in ("coin_id", *CANONICAL_COLUMNS)}, index=index)

    # Extra columns: numeric ones are kept as x_<name>; others are ignored. They are
    # gathered first and joined once: inserting 10,000 columns one by one is quadratic.
    extras, ignored = [], []
    extra_values: dict[str, np.ndarray] = {}
    taken = set(frame.columns)
    for col in raw.columns:
        norm = normalize_header(col)
        if norm in spec.known or str(col).startswith("_unnamed_"):
            continue
        if by_norm.get(norm) != col:  # a second column with the same folded name
            ignored.append(str(col))
            continue
        values, missing, bad_text = _numbers(raw[col], money=spec.money)
        name = extra_name(col)
        if bad_text is not None or missing.all() or name in taken:
            ignored.append(str(col))
            continue
        infinite = np.isinf(values)
        probs.add(infinite, str(col), _shown(values, " is not finite"))
        extra_values[name] = np.where(infinite, np.nan, values)
        taken.add(name)
        extras.append(str(col))
    if extra_values:
        frame = pd.concat([frame, pd.DataFrame(extra_values, index=index)], axis=1)

    if spec.derive_changes:
        bad_rows = np.zeros(n, dtype=bool)
        p = probs.frame()
        bad_rows[p["position"].to_numpy()] = True
        _derive_changes(frame, ok=~bad_rows)
    return Checked(
        frame=frame, problems=probs.frame(), extra_columns=extras, ignored_columns=ignored
    )


def _parse_times(s: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse timestamps (ISO 8601 or YYYYMMDD; naive = UTC) once per distinct value."""
    _, missing, codes, uniques = _clean_text(s)
    parsed = pd.to_datetime(
        pd.Index(uniques, dtype=object),
        format="ISO8601",
        utc=True,
        errors="coerce",
    )
    parsed = pd.DatetimeIndex(parsed).as_unit("us").floor("s")
    values = parsed.take(codes, allow_fill=True, fill_value=pd.NaT)
    ts = pd.Series(values, index=s.index).astype("datetime64[us, UTC]")
    bad = ~missing & ts.isna().to_numpy()
    return ts, missing, bad


def _derive_changes(frame: pd.DataFrame, *, ok: np.ndarray) -> None:
    """OHLCV: 24h and 7d changes from the closes of the same coin 1 and 7 days earlier."""
    day = frame["snapshot_ts"].dt.floor("D")
    usable = ok & frame["coin_id"].notna().to_numpy() & day.notna().to_numpy()
    closes = pd.Series(
        frame["price"].to_numpy()[usable],
        index=pd.MultiIndex.from_arrays(
            [frame["coin_id"].to_numpy()[usable], day.to_numpy()[usable]]
        ),
    )
    closes = closes[~closes.index.duplicated(keep="first")]
    for canon, days in (("change_24h", 1), ("change_7d", 7)):
        key = pd.MultiIndex.from_arrays(
            [frame["coin_id"].to_numpy(), (day - pd.Timedelta(days=days)).to_numpy()]
        )
        before = closes.reindex(key).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            change = frame["price"].to_numpy() / before - 1.0
        frame[canon] = np.where(np.isfinite(change), change, np.nan)
    frame["change_1h"] = np.nan


# --- records (prediction input) -------------------------------------------------------------


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


# --- files ----------------------------------------------------------------------------------


@dataclass
class ParsedFile:
    """A CSV file checked row by row.

    Attributes
    ----------
    spec : FormatSpec
        The detected format.
    rows : pandas.DataFrame
        The good rows: ``coin_id``, canonical columns, ``x_*`` extras and ``line``.
    rejected : pandas.DataFrame
        ``line``, ``reason``, ``raw_line`` of every row that failed a check.
    rows_in_file : int
        Data rows in the file (blank lines not counted).
    extra_columns, ignored_columns : list of str
        Extra numeric columns kept, and columns that were neither known nor numeric.
    """

    spec: FormatSpec
    rows: pd.DataFrame
    rejected: pd.DataFrame
    rows_in_file: int
    extra_columns: list[str]
    ignored_columns: list[str]


_SKIPPED = re.compile(r"line (\d+): expected (\d+) fields, saw (\d+)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BLANK_AFTER = re.compile(r"\n(?=[ \t\r\f\v]*(?:\n|\Z))")


def decode_csv_bytes(data: bytes) -> str:
    """Decode a file's bytes as UTF-8 (a BOM is allowed).

    Raises
    ------
    FileRejected
        For NUL bytes (binary data) or bytes that are not UTF-8.
    """
    if b"\x00" in data:
        at = data.index(b"\x00")
        raise FileRejected(
            f"unreadable encoding: NUL byte at offset {at} (binary data or UTF-16); "
            "expected a UTF-8 text CSV"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(
            f"unreadable encoding: byte 0x{data[exc.start]:02x} at offset {exc.start} is not "
            "UTF-8; expected a UTF-8 text CSV"
        ) from None


def parse_csv(data: bytes) -> ParsedFile:
    """Detect the format of a CSV file's bytes and check every row.

    Parameters
    ----------
    data : bytes
        The file's content.

    Returns
    -------
    ParsedFile

    Raises
    ------
    FileRejected
        Unreadable encoding, unknown header, duplicate columns, no data rows, or text
        that is not CSV; the message names the problem and what was expected.
    """
    text = decode_csv_bytes(data)
    if not text or text.isspace():
        raise FileRejected(
            f"empty file: no header and no rows; expected one of: {expected_formats_text()}"
        )
    first = _LINE_BREAK.split(text, maxsplit=1)[0]
    try:
        # newline="": the csv module sees \r, \n and \r\n line ends as they are.
        source = io.StringIO(text if first.count('"') % 2 else first, newline="")
        header = [h.strip() for h in next(csv.reader(source))]
    except (csv.Error, StopIteration) as exc:
        raise FileRejected(f"cannot read the header as CSV: {exc}") from None
    seen: dict[str, str] = {}
    for h in header:
        norm = normalize_header(h)
        if norm and norm in seen:
            raise FileRejected(f"duplicate column {h!r} (also {seen[norm]!r}) in the header")
        seen[norm] = h
    spec = detect_format(header)
    names = [h if h else f"_unnamed_{i}" for i, h in enumerate(header)]
    text_cols = [h for h in names if spec.fields.get(normalize_header(h)) in IDENTITY_FIELDS]

    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    raw, lines, skipped, blank = _read_rows(text, body, names, text_cols)
    if blank.any():
        raw, lines = raw[~blank], lines[~blank]
    rows_in_file = len(raw) + len(skipped)
    if rows_in_file == 0:
        raise FileRejected(f"no rows: the file has a {spec.title} header but no data rows")
    raw = raw.reset_index(drop=True)

    checked = check_frame(raw, spec)
    frame = checked.frame
    frame["line"] = lines
    probs = checked.problems
    good = np.ones(len(frame), dtype=bool)
    good[probs["position"].to_numpy()] = False
    reasons = _reasons(probs, len(frame))

    # A (coin, time) twice in one file: the first good occurrence wins.
    keyed = frame.loc[good, ["coin_id", "snapshot_ts", "line"]]
    dup = keyed.duplicated(["coin_id", "snapshot_ts"], keep="first").to_numpy()
    if dup.any():
        first = keyed.groupby(["coin_id", "snapshot_ts"], sort=False)["line"].transform("first")
        dup_pos = keyed.index.to_numpy()[dup]
        reasons[dup_pos] = [
            f"duplicate of line {int(f)} (same coin and time)" for f in first.to_numpy()[dup]
        ]
        good[dup_pos] = False

    bad_pos = np.flatnonzero(~good)
    rejected = pd.DataFrame(
        {
            "line": np.concatenate(
                [lines[bad_pos], np.array([s[0] for s in skipped], dtype=np.int64)]
            ),
            "reason": np.concatenate(
                [
                    reasons[bad_pos],
                    np.array(
                        [f"has {s[2]} fields, expected {s[1]}" for s in skipped], dtype=object
                    ),
                ]
            ),
        }
    )
    rejected = rejected.sort_values("line", kind="stable").reset_index(drop=True)
    raw_lines = _raw_lines(text, rejected["line"].to_numpy())
    rejected["raw_line"] = raw_lines
    if len(rejected):
        # Name a short line as such: its missing fields are the real problem.
        counts = np.array([_field_count(r) for r in raw_lines])
        short = (counts < len(names)) & ~rejected["reason"].str.startswith("has ").to_numpy(bool)
        if short.any():
            rejected.loc[short, "reason"] = [
                f"has {c} fields, expected {len(names)}; {r}"
                for c, r in zip(counts[short], rejected.loc[short, "reason"], strict=True)
            ]
    rows = frame.loc[good].reset_index(drop=True)
    return ParsedFile(
        spec=spec,
        rows=rows,
        rejected=rejected,
        rows_in_file=rows_in_file,
        extra_columns=checked.extra_columns,
        ignored_columns=checked.ignored_columns,
    )


def _read_rows(text: str, body: bytes, names: list[str], text_cols: list[str]):
    """Read the data rows; returns (raw frame, line number per row, skipped lines).

    Skipped lines are ``(line, expected fields, seen fields)`` for lines with too many
    fields. Blank lines are kept as empty rows so that row ``k`` sits on line ``k + 2``.
    """
    na = {h: list(MISSING_TOKENS) for h in names if h not in text_cols}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = pd.read_csv(
                io.BytesIO(body),
                encoding="utf-8",
                header=0,
                names=names,
                index_col=False,
                dtype={h: str for h in text_cols},
                keep_default_na=False,
                na_values=na,
                skip_blank_lines=False,
                on_bad_lines="warn",
                engine="c",
            )
        except (pd.errors.ParserError, ValueError) as exc:
            raise FileRejected(f"cannot parse the file as CSV: {str(exc).strip()}") from None
    skipped = []
    understood = True
    for w in caught:
        found = _SKIPPED.findall(str(w.message))
        skipped.extend((int(a), int(b), int(c)) for a, b, c in found)
        understood &= bool(found) or not issubclass(w.category, pd.errors.ParserWarning)
    skipped.sort()
    physical = text.count("\n") + (0 if text.endswith("\n") else 1)
    n_records = len(raw) + len(skipped)
    if understood and physical - 1 == n_records:
        # No quoted line breaks: record k (0-based, header excluded) is on line k + 2.
        all_lines = np.arange(2, 2 + n_records, dtype=np.int64)
        if skipped:
            all_lines = all_lines[~np.isin(all_lines, [s[0] for s in skipped])]
        blank = np.isin(all_lines, _blank_line_numbers(text))
        return raw, all_lines, skipped, blank
    return _read_rows_exact(text, names)


def _blank_line_numbers(text: str) -> list[int]:
    """Numbers of the lines that hold only whitespace.

    The regex starts at each newline only (a literal prefix, found at C speed), so a file
    without blank lines costs one quick scan.
    """
    numbers, line, pos = [], 1, 0
    if text[:1] == "\n" or (text and text.split("\n", 1)[0].strip() == ""):
        numbers.append(1)
    for m in _BLANK_AFTER.finditer(text):
        line += text.count("\n", pos, m.start() + 1)
        pos = m.start() + 1
        numbers.append(line)
    return numbers


def _read_rows_exact(text: str, names: list[str]):
    """Slow path for files with quoted line breaks: the csv module knows each record's line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        next(reader)
        rows, lines, skipped, blank_lines = [], [], [], []
        start = reader.line_num + 1
        for record in reader:
            if len(record) <= 1 and not "".join(record).strip():
                blank_lines.append(start)
            if len(record) > len(names):
                skipped.append((start, len(names), len(record)))
            else:
                rows.append(record + [""] * (len(names) - len(record)))
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise FileRejected(f"cannot parse the file as CSV: {exc}") from None
    raw = pd.DataFrame(rows, columns=names, dtype=object).astype("string")
    lines = np.array(lines, dtype=np.int64)
    return raw, lines, skipped, np.isin(lines, blank_lines)


def _reasons(probs: pd.DataFrame, n: int) -> np.ndarray:
    reasons = np.full(n, "", dtype=object)
    if len(probs):
        text = probs["field"] + ": " + probs["problem"]
        joined = text.groupby(probs["position"]).agg("; ".join)
        reasons[joined.index.to_numpy()] = joined.to_numpy()
    return reasons


def _raw_lines(text: str, line_numbers: np.ndarray, limit: int = 2000) -> list[str]:
    if not len(line_numbers):
        return []
    lines = _LINE_BREAK.split(text)  # the same line ends as pandas and the csv module
    out = []
    for ln in line_numbers:
        raw = lines[ln - 1] if 0 < ln <= len(lines) else ""
        out.append(raw[:limit])
    return out


def _field_count(line: str) -> int:
    """Fields in one raw line (a stray CR or quote cannot make this fail)."""
    try:
        return len(next(csv.reader(io.StringIO(line, newline="")), []))
    except csv.Error:
        return line.count(",") + 1
