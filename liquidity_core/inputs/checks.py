"""Row checks: a raw frame of one format into canonical rows and rejected rows.

:func:`check_frame` checks every row of a frame read with a :class:`.formats.FormatSpec`
(names and symbols, numbers, timestamps, duplicates) and returns the good rows in the
canonical columns plus one reason per rejected row. All checks are vectorized
(pandas/numpy), so a million-row file is checked in seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from liquidity_core.inputs.formats import (
    CANONICAL_COLUMNS,
    MISSING_TOKENS,
    NUMERIC_FIELDS,
    REQUIRED_NUMBERS,
    FormatSpec,
    coin_slug,
    extra_name,
    normalize_header,
)

_MISSING_LOWER = frozenset(t.lower() for t in MISSING_TOKENS)

#: Text no name or symbol may hold: C0 controls but tab/line breaks, DEL, lone surrogates.
BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


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
    n, index = len(raw), raw.index
    probs = _Problems()
    by_norm: dict[str, str] = {}
    for col in raw.columns:
        by_norm.setdefault(normalize_header(col), col)
    user_of = {canon: by_norm[norm] for norm, canon in spec.fields.items() if norm in by_norm}

    def column(canon: str) -> tuple[pd.Series | None, str]:
        """The user's column for ``canon`` (None when absent) and its name for messages."""
        if canon in user_of:
            return raw[user_of[canon]], user_of[canon]
        return None, spec.user_name(canon)

    out: dict[str, object] = {}
    coin_ids = None
    for canon in ("coin_name", "symbol"):
        out[canon], ids = _check_names(
            *column(canon), probs, canon=canon, index=index, require=require_identity
        )
        coin_ids = ids if canon == "coin_name" else coin_ids
    for canon in NUMERIC_FIELDS:
        out[canon] = _check_numbers(*column(canon), probs, canon=canon, spec=spec, n=n)
    out["snapshot_ts"] = _check_times(
        *column("snapshot_ts"), probs, index=index, require=require_identity
    )
    out["coin_id"] = pd.Series(coin_ids, index=index, dtype=object)
    frame = pd.DataFrame({c: out[c] for c in ("coin_id", *CANONICAL_COLUMNS)}, index=index)

    extra_values, extras, ignored = _check_extras(raw, spec, by_norm, set(frame.columns), probs)
    if extra_values:
        # Joined once: inserting 10,000 columns one by one is quadratic.
        frame = pd.concat([frame, pd.DataFrame(extra_values, index=index)], axis=1)

    if spec.range_from and all(h in by_norm for h in spec.range_from):
        frame[RANGE_EXTRA] = _log_range(*(raw[by_norm[h]] for h in spec.range_from), spec=spec)
    if spec.derive_changes:
        bad_rows = np.zeros(n, dtype=bool)
        p = probs.frame()
        bad_rows[p["position"].to_numpy()] = True
        _derive_changes(frame, ok=~bad_rows)
    return Checked(
        frame=frame, problems=probs.frame(), extra_columns=extras, ignored_columns=ignored
    )


def _check_names(values, user: str, probs: _Problems, *, canon: str, index, require: bool):
    """Coin name or symbol: cleaned text (None where bad) and, for names, the coin ids."""
    n = len(index)
    coin_ids = None
    if values is None:
        text = np.full(n, None, dtype=object)
        empty, bad = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
        if canon == "coin_name":
            coin_ids = np.full(n, None, dtype=object)
    else:
        text, empty, codes, uniques = _clean_text(values, upper=canon == "symbol")
        u_bad = np.array([BAD_TEXT.search(u) is not None for u in uniques], dtype=bool)
        bad = np.append(u_bad, False)[codes]
        probs.add(bad, user, _shown_text(text, " has a control character or lone surrogate"))
        text[bad], empty, uniques = None, empty | bad, np.where(u_bad, "", uniques)
        if canon == "coin_name":
            slugs = np.array([coin_slug(u) for u in uniques] + [None], dtype=object)
            coin_ids = slugs[codes]
            coin_ids[empty] = None
    if require:
        probs.add(empty & ~bad, user, "missing")
    return pd.Series(text, index=index, dtype=object), coin_ids


def _check_numbers(values, user: str, probs: _Problems, *, canon: str, spec, n: int):
    """One numeric field as floats (NaN where missing or bad; changes as fractions)."""
    required = canon in REQUIRED_NUMBERS
    if values is None:
        if required:
            probs.add(np.ones(n, dtype=bool), user, "missing")
        return np.full(n, np.nan)
    values, missing, bad_text = _numbers(values, money=spec.money)
    if required:
        probs.add(missing, user, "missing")
    if bad_text is not None:
        probs.add(bad_text.notna().to_numpy(), user, _shown_text(bad_text, " is not a number"))
    with np.errstate(invalid="ignore"):
        infinite = np.isinf(values)
        probs.add(infinite, user, _shown(values, " is not finite"))
        values = np.where(infinite, np.nan, values)
        if required:
            probs.add(values < 0, user, _shown(values, " is negative"))
            return values
        unit = "%" if spec.percent else ""
        shown = values
        if spec.percent:
            values = values / 100.0
        below = values < -1
        text = unit + " is below -100% (a price cannot fall by more than all of it)"
        probs.add(below, user, _shown(shown, text))
        return np.where(below, np.nan, values)


def _check_times(values, user: str, probs: _Problems, *, index, require: bool):
    """The snapshot time as UTC timestamps (NaT where missing or bad)."""
    if values is None:
        if require:
            probs.add(np.ones(len(index), dtype=bool), user, "missing")
        return pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]")
    ts, missing, bad = _parse_times(values)
    if require:
        probs.add(missing, user, "missing")
    expected = (
        " is not a date (expected YYYY-MM-DD, an ISO 8601 time or YYYYMMDD, from 1970 to 2262)"
    )
    probs.add(bad, user, _shown_text(_as_text(values), expected))
    return ts


#: The extra holding the intraday range of formats that have one (``FormatSpec.range_from``).
RANGE_EXTRA = "x_hl_range"


def _log_range(high: pd.Series, low: pd.Series, *, spec) -> np.ndarray:
    """log(high / low) per row; NaN where either is missing, not positive or high < low.

    High and Low are not stored columns, so a bad one costs the row only this feature,
    never the row itself (as before the range was kept).
    """
    hi = _numbers(high, money=spec.money)[0]
    lo = _numbers(low, money=spec.money)[0]
    ok = np.isfinite(hi) & np.isfinite(lo) & (lo > 0) & (hi >= lo)
    # A difference of logs: a ratio of extreme values (1e308 / 5e-324) would overflow.
    return np.where(ok, np.log(np.where(ok, hi, 1.0)) - np.log(np.where(ok, lo, 1.0)), np.nan)


def _check_extras(raw: pd.DataFrame, spec, by_norm: dict, taken: set, probs: _Problems):
    """Extra columns: numeric ones are kept as ``x_<name>``, others are ignored.

    Returns ``({x_name: values}, kept column names, ignored column names)``.
    """
    extras, ignored = [], []
    extra_values: dict[str, np.ndarray] = {}
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
    return extra_values, extras, ignored


_FIRST_TIME = pd.Timestamp("1970-01-01", tz="UTC")
_END_TIME = pd.Timestamp("2262-04-11", tz="UTC")


#: The parsed distinct times of request-sized inputs (at most this many distinct values),
#: by their text: requests keep sending the same few dates, and parsing is most of the
#: cost of checking one row. The values are immutable indexes; the cache is cleared when
#: it holds 1,024 of them.
_CACHED_TIMES = 8
_parsed_times: dict[tuple, pd.DatetimeIndex] = {}


def _parse_times(s: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse timestamps (ISO 8601 or YYYYMMDD; naive = UTC) once per distinct value."""
    _, missing, codes, uniques = _clean_text(s)
    parsed = parse_distinct_times(uniques)
    values = parsed.take(codes, allow_fill=True, fill_value=pd.NaT)
    ts = pd.Series(values, index=s.index).astype("datetime64[us, UTC]")
    bad = ~missing & ts.isna().to_numpy()
    return ts, missing, bad


def parse_distinct_times(uniques) -> pd.DatetimeIndex:
    """Stripped time texts as UTC times floored to the second (NaT where not a date from
    1970 to 2262), one per text: the parse of :func:`check_frame`, shared with the
    plain-Python path of :mod:`.records`. Request-sized inputs are cached by their text."""
    key = tuple(uniques) if len(uniques) <= _CACHED_TIMES else None
    parsed = _parsed_times.get(key) if key is not None else None
    if parsed is None:
        parsed = pd.to_datetime(
            pd.Index(uniques, dtype=object),
            format="ISO8601",
            utc=True,
            errors="coerce",
        )
        parsed = pd.DatetimeIndex(parsed).as_unit("us").floor("s")
        # Dates from 1970 (earlier market data is a typo) to 2262 (the end of int64 ns).
        parsed = parsed.where((parsed >= _FIRST_TIME) & (parsed < _END_TIME))
        if key is not None:
            if len(_parsed_times) >= 1024:
                _parsed_times.clear()
            _parsed_times[key] = parsed
    return parsed


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
