"""Seeded generators of hostile inputs for ``make fuzz`` (see tests/support/fuzz.py).

Every generator takes a :class:`random.Random`, so a run is reproduced by its seed. Each
text field, whether a CSV cell, a header, a JSON key or value, a form field, a symbol in
a path or a query string, draws from the same pools: ordinary values, numbers in every
spelling, and the Unicode edge cases (lone surrogates, NUL, byte order marks, combining
marks, non-ASCII digits, bidi and zero-width characters, astral characters).
"""

from __future__ import annotations

import json
import random
from urllib.parse import quote

HEADERS = {
    "coingecko": ["coin", "symbol", "price", "1h", "24h", "7d", "24h_volume", "mkt_cap", "date"],
    "cmc": [
        "Rank",
        "Name",
        "Symbol",
        "Market Cap",
        "Price",
        "Circulating Supply",
        "Volume (24h)",
        "% 1h",
        "% 24h",
        "% 7d",
        "snapshot_date",
    ],
    "ohlcv": [
        "SNo",
        "Name",
        "Symbol",
        "Date",
        "High",
        "Low",
        "Open",
        "Close",
        "Volume",
        "Marketcap",
    ],
}
TEXT_COLUMNS = {"coin", "symbol", "name", "date", "snapshot_date"}
API_FIELDS = ["coin", "symbol", "price", "1h", "24h", "7d", "24h_volume", "mkt_cap", "date"]

#: The Unicode edge cases, each in every text field.
UNICODE_EDGES = [
    "\ud800",  # lone high surrogate
    "\udfff",  # lone low surrogate
    "a\udc80b",
    "\udbff\ud800",  # surrogates in the wrong order
    "\x00",
    "BTC\x00",
    "\x00\x00\x00",
    "\ufeff",  # byte order mark (zero-width no-break space)
    "\ufeffBTC",
    "\ufffe",
    "\uffff",
    "e\u0301",  # combining acute
    "\u0301",  # a combining mark alone
    "B\u0336T\u0336C\u0336",
    "Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358\u0359\u035a",  # a stack of marks
    "\u0661\u0662\u0663",  # Arabic-Indic digits
    "\u06f1\u06f2",  # Extended Arabic-Indic digits
    "\u0967\u0968\u0969",  # Devanagari digits
    "\uff11\uff12\uff13",  # full-width digits
    "\U0001d7d9\U0001d7da",  # mathematical double-struck digits
    "\u00b2\u00b3",  # superscripts
    "\u00bd",
    "\u216b",  # roman numeral twelve
    "\u200b",
    "\u200d",
    "\u202e\u202dBTC",  # bidi overrides
    "\u2028",
    "\u0085",
    "\U0001f680",
    "\U0010ffff",
    "\u0130",
    "\u00df",
    "\ufb01",
    "\u2212" + "5",  # a Unicode minus
    "\u00a0",
]
ORDINARY_TEXT = ["Bitcoin", "Ethereum", "BTC", "ETH", "Tether USDt", "XRP", "", " ", "Caf\u00e9"]
HOSTILE_TEXT = [
    "../../etc/passwd",
    "..",
    "/",
    "\\",
    "%00",
    "%s%n%x",
    "{}",
    "<script>alert(1)</script>",
    "'; DROP TABLE market_snapshots;--",
    "=cmd|' /C calc'!A0",
    "a" * 300,
    "\r\n",
    "\t",
    '"',
    ",",
]
#: Dates out of range or malformed ("-01-01" parsed as year -1 once and crashed predict).
ODD_DATES = ["-01-01", "0000-01-01", "1969-12-31", "2262-04-12", "99999-01-01", "2024-02-30"]
NUMBER_TEXT = [
    "9" * 200,  # 1e200 as digits: once accepted past the range check (overflowed float32)
    "1e308",
    "1e309",
    "-1e309",
    "1e-400",
    "9" * 400,
    "0",
    "-0",
    "-5",
    "NaN",
    "inf",
    "-Infinity",
    "",
    "N/A",
    "1,234",
    "$1,234.50",
    "12%",
    "0x1F",
    "1_000",
    " 42 ",
    "1.2.3",
    "1e",
    "٣.١٤",
    "\uff15\uff10",
    "1\u0301",
    "12\x00",
    "\ufeff12",
    "\u22125",
    "\u00a01\u00a0",
    "\ud8001",
]


def text(rng: random.Random) -> str:
    """A text value: ordinary, hostile, a Unicode edge case, or a mix of them."""
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(ORDINARY_TEXT)
    if roll < 0.55:
        return rng.choice(UNICODE_EDGES)
    if roll < 0.65:
        return rng.choice(HOSTILE_TEXT)
    if roll < 0.85:
        pools = (UNICODE_EDGES, ORDINARY_TEXT, HOSTILE_TEXT, NUMBER_TEXT)
        return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(2, 4)))
    # Random code points, surrogates included.
    return "".join(
        chr(rng.choice((rng.randint(0, 0x7F), rng.randint(0, 0x10FFFF))))
        for _ in range(rng.randint(1, 8))
    )


def number_text(rng: random.Random) -> str:
    """A number as text: valid mostly, else in an odd spelling or not a number at all."""
    roll = rng.random()
    if roll < 0.5:
        return repr(rng.uniform(0.001, 1e12))
    if roll < 0.8:
        return rng.choice(NUMBER_TEXT)
    return text(rng)


def number_json(rng: random.Random):
    """A JSON value where a number belongs."""
    roll = rng.random()
    if roll < 0.45:
        return rng.uniform(0.0, 1e12)
    if roll < 0.55:
        return rng.choice([0, -1, 10**30, -(10**400), 1e-320, 1e308, 2**63, float("nan")])
    if roll < 0.85:
        return number_text(rng)
    return rng.choice([None, True, False, [], {}, [1], {"a": 1}])


# --- CSV files -------------------------------------------------------------------------------


def _hostility(rng: random.Random) -> float:
    """The share of hostile values in one input: from a few to all of them."""
    return rng.choice([0.02, 0.05, 0.1, 0.2, 0.5, 1.0])


VALID_NAMES = ["Bitcoin", "Ethereum", "Caf\u00e9 Coin", "e\u0301coin", "\u6bd4\u7279\u5e01", "XRP"]


def _valid_cell(column: str, rng: random.Random) -> str:
    """A value the column accepts (Unicode names included)."""
    if "date" in column:
        return rng.choice(["2024-01-01", "2024-01-02", "2024-01-03", "20240104"])
    if column in ("coin", "name"):
        return rng.choice(VALID_NAMES)
    if column == "symbol":
        return rng.choice(["BTC", "ETH", "CAFE", "ECO", "BTB", "XRP"])
    if column in ("1h", "24h", "7d"):
        return repr(rng.uniform(-0.5, 0.5))
    if column.startswith("%"):
        return f"{rng.uniform(-50, 50):.2f}"
    return repr(rng.uniform(0.01, 1e11))


def _quote_csv(cell: str) -> str:
    if any(c in cell for c in ',"\r\n'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _encode(doc: str, rng: random.Random) -> bytes:
    encoding = rng.choice(["utf-8"] * 9 + ["utf-8-sig", "utf-16", "utf-32", "latin-1", "cp1252"])
    if encoding.startswith("utf"):
        return doc.encode(encoding, "surrogatepass")  # lone surrogates as invalid bytes
    return doc.encode(encoding, "replace")


def _mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not data:
            break
        at = rng.randrange(len(data))
        op = rng.randrange(4)
        if op == 0:
            data[at] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice([b"\x00", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\r", b'"'])
        elif op == 2:
            del data[at : at + rng.randint(1, 20)]
        else:
            data = data[:at]
    return bytes(data)


def csv_file(rng: random.Random) -> bytes:
    """A CSV document in one of the accepted formats, hostile cells and all."""
    if rng.random() < 0.05:
        return rng.randbytes(rng.randint(0, 400))
    header = list(HEADERS[rng.choice(sorted(HEADERS))])
    if rng.random() < 0.3:
        header = [rng.choice([h, h.upper(), f" {h} ", f"\ufeff{h}", h + "\u0301"]) for h in header]
    if rng.random() < 0.2:
        header.append(text(rng))  # an extra column with a hostile name
    if rng.random() < 0.05:
        header[rng.randrange(len(header))] = text(rng)
    lines = [",".join(_quote_csv(h) for h in header)]
    # A file holds ~100 cells, and one NUL or invalid UTF-8 byte rejects it whole:
    # keep some files nearly clean so that the row checks and the load run too.
    hostile = rng.choice([0.0, 0.0, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0])
    for _ in range(rng.randint(0, 12)):
        cells = []
        for h in header:
            folded = h.strip("\ufeff ").lower()
            is_text = folded in TEXT_COLUMNS or "date" in folded
            if rng.random() >= hostile:
                cells.append(_valid_cell(folded, rng))
            elif "date" in folded and rng.random() < 0.3:
                cells.append(rng.choice(ODD_DATES))
            elif is_text or rng.random() < 0.2:
                cells.append(text(rng))
            else:
                cells.append(number_text(rng))
        if rng.random() < 0.05:
            cells = cells[: rng.randint(0, len(cells))]
        lines.append(",".join(_quote_csv(c) for c in cells))
    doc = rng.choice(["\n", "\r\n", "\r"]).join(lines)
    if rng.random() < 0.1:
        doc = "\ufeff" + doc
    data = _encode(doc, rng)
    return _mutate(data, rng) if rng.random() < 0.1 else data


# --- JSON bodies, forms, paths ------------------------------------------------------------------


def _row(rng: random.Random, hostile: float) -> dict:
    row = {}
    for name in API_FIELDS:
        if rng.random() < 0.05 * hostile:
            continue
        if rng.random() >= hostile:
            value = _valid_cell(name, rng)
            row[name] = value if name in ("coin", "symbol", "date") else float(value)
        elif name == "date" and rng.random() < 0.3:
            row[name] = rng.choice(ODD_DATES)
        else:
            row[name] = text(rng) if name in ("coin", "symbol", "date") else number_json(rng)
    for _ in range(rng.choice([0, 0, 0, 1, 3])):
        row[text(rng)] = rng.choice([number_json(rng), text(rng)])
    return row


def json_body(rng: random.Random) -> tuple[bytes, str]:
    """(body, content type) for ``POST /api/v1/predict``."""
    roll, hostile = rng.random(), _hostility(rng)
    if roll < 0.6:
        data = _row(rng, hostile)
    elif roll < 0.9:
        data = [_row(rng, hostile) for _ in range(rng.randint(0, 6))]
    else:
        data = rng.choice(
            [text(rng), number_json(rng), [[_row(rng, hostile)]], {"rows": [_row(rng, hostile)]}]
        )
    ascii_only = rng.random() < 0.6
    body = json.dumps(data, ensure_ascii=ascii_only)  # \ud800 escapes, or raw characters
    raw = body.encode("utf-8", "surrogatepass")
    if rng.random() < 0.05:
        raw = b"\xef\xbb\xbf" + raw
    if rng.random() < 0.08:
        raw = _mutate(raw, rng)
    ctype = "application/json"
    if rng.random() < 0.05:
        ctype = rng.choice(["text/plain", "application/json; charset=latin-1", ""])
    return raw, ctype


def form_fields(rng: random.Random) -> bytes:
    """A urlencoded body for the form on ``/``: every field a hostile text."""
    fields = ["price", "1h", "24h", "7d", "24h_volume", "mkt_cap", "coin", "symbol"]
    parts, hostile = [], _hostility(rng)
    for name in fields:
        if rng.random() >= hostile:
            value = _valid_cell(name, rng)
        else:
            value = number_text(rng) if rng.random() < 0.5 else text(rng)
        parts.append(f"{name}={quote(value.encode('utf-8', 'surrogatepass'), safe='')}")
    return "&".join(parts).encode()


def _segment(rng: random.Random) -> str:
    """A symbol as it travels in a URL: percent-encoded UTF-8 (surrogates as raw bytes),
    or a raw escape sequence, possibly malformed."""
    if rng.random() < 0.15:
        return rng.choice(["%ZZ", "%", "%00", "%2F", "%2e%2e", "%C0%AF", "%ED%A0%80", "%FF%FE"])
    value = text(rng) if rng.random() < 0.8 else rng.choice(["BTC", "ETH", "btc"])
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def get_path(rng: random.Random) -> str:
    """A GET path: a route with a hostile symbol, query string or segment."""
    seg = _segment(rng)
    return rng.choice(
        [
            f"/api/v1/coins/{seg}/prediction",
            f"/api/v1/coins/{seg}/prediction",
            f"/coins/{seg}",
            f"/coins/{seg}",
            f"/coins?symbol={seg}",
            f"/api/v1/models?{seg}={seg}",
            f"/models?page={seg}",
            f"/{seg}",
            f"/api/v1/{seg}",
            f"/static/{seg}",
            f"/report?{seg}",
            f"/healthz?{seg}",
        ]
    )
