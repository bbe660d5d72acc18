"""The three input formats: their headers, detection, canonical columns and coin slugs.

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
The canonical numbers are ``market_snapshots``' measures (:mod:`liquidity_core.store.schema`).

This module only describes the formats; :mod:`.reader` reads a file's bytes,
:mod:`.checks` checks its rows and :mod:`.records` checks prediction input.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from liquidity_core.errors import InputError
from liquidity_core.store.schema import CHANGES, MEASURES, REQUIRED_MEASURES

#: The numbers of a snapshot (``market_snapshots``' measures), those every row must have
#: (NOT NULL there), and the relative changes.
NUMERIC_FIELDS = MEASURES
REQUIRED_NUMBERS = REQUIRED_MEASURES
CHANGE_FIELDS = CHANGES
#: The fields that say which coin and when.
IDENTITY_FIELDS = ("coin_name", "symbol", "snapshot_ts")
#: Canonical columns, in order, of every normalized frame (``x_*`` extras follow).
CANONICAL_COLUMNS = (*IDENTITY_FIELDS[:2], *NUMERIC_FIELDS, IDENTITY_FIELDS[2])

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
    range_from : tuple of str or None
        Normalized names of the day's high and low: the format has an intraday range, kept
        as the extra ``x_hl_range`` = log(high / low), a volatility proxy (OHLCV).
    """

    name: str
    title: str
    header: tuple[str, ...]
    fields: dict
    percent: bool = False
    money: bool = False
    derive_changes: bool = False
    range_from: tuple[str, str] | None = None

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
    range_from=("high", "low"),
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
