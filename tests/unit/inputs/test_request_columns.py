"""liquidity_core.inputs.records.request_columns: the plain-Python path for small requests
gives exactly what the pandas path (normalize_records) gives: the same columns, bit for bit,
and the same errors in the same order, on good and bad rows of every format."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from support.fuzz_inputs import HEADERS

from liquidity_core.inputs import records
from liquidity_core.inputs.records import (
    PLAIN_ROWS,
    frame_columns,
    normalize_records,
    request_columns,
)

# The three formats' columns, as the fuzzing helpers write them (an OHLCV row's SNo is
# optional and left out).
CG_KEYS = tuple(HEADERS["coingecko"])
CMC_KEYS = tuple(HEADERS["cmc"])
OHLCV_KEYS = tuple(k for k in HEADERS["ohlcv"] if k != "SNo")
NAME_KEYS = {"coin", "symbol", "Name", "Symbol"}
TIME_KEYS = {"date", "snapshot_date", "Date"}

NUMBERS = [
    1.5,
    0.0,
    -0.0,
    2,
    0,
    -3,
    12345678901,
    2**53,
    2**53 + 1,
    -0.5,
    -1.5,
    -150.0,
    -100.0,
    -99.5,
    1e-300,
    1e300,
    5e-324,
    float("inf"),
    float("-inf"),
    float("nan"),
    None,
    0.1 + 0.2,
]
TEXT_NUMBERS = ["12.5", "$1,000", " 7 ", "abc", "", "NaN", "-", "1e3", "50%"]
NAMES = [
    "Bitcoin",
    "  ether  ",
    "",
    "   ",
    None,
    "Pundi X [OLD]",
    "bad\x01name",
    "\x7f",
    "ünïcödé",
    "日本",
    "btc",
    " eth ",
    "x" * 100,
    "tab\there",
]
TIMES = [
    "2024-01-01",
    "2024-01-01T12:30:45Z",
    "2024-01-01T12:30:45.999+02:00",
    " 2024-01-02 ",
    "20240103",
    "1969-12-31",
    "2300-01-01",
    "not a date",
    "",
    "  ",
    None,
    "2024-13-01",
    "2024-02-30",
]
ODD = [True, False, [1], {"a": 1}, [], "text"]


def _value(rng: random.Random, key: str, odd: float = 0.0):
    """A value for ``key``; with probability about ``odd`` one the API would refuse or
    that only the pandas path checks (booleans, lists, numbers as text, ...)."""
    roll = rng.random()
    if roll < odd / 3:
        return rng.choice(ODD)
    if key in NAME_KEYS:
        return rng.choice(NAMES) if roll < 1 - odd / 3 else rng.choice(NUMBERS)
    if key in TIME_KEYS:
        return rng.choice(TIMES) if roll < 1 - odd / 3 else rng.choice(NUMBERS)
    if roll < odd:
        return rng.choice(TEXT_NUMBERS)
    if roll < 0.5:
        return rng.choice(NUMBERS)
    return rng.choice([rng.uniform(-2, 2), rng.uniform(0, 1e9), float(rng.randint(0, 10**6))])


def _row(rng: random.Random, keys: tuple[str, ...], odd: float) -> dict:
    row = {}
    for key in keys:
        if rng.random() < 0.85:
            row[key] = _value(rng, key, odd)
    roll = rng.random()
    if roll < 0.15:  # an extra numeric column (sometimes a name two keys share)
        row[rng.choice(["sentiment", "Sentiment Score", "sentiment_score", "x"])] = rng.choice(
            NUMBERS
        )
    elif roll < 0.2:
        row["_unnamed_3"] = rng.choice(NUMBERS + ["text"])
    elif roll < 0.25:  # the same field under two spellings
        row[rng.choice(keys).upper()] = rng.choice(NUMBERS)
    elif roll < 0.3:
        row["note"] = "text"
    if rng.random() < 0.1:
        items = list(row.items())
        rng.shuffle(items)
        row = dict(items)
    return row


def _rows(rng: random.Random):
    keys = rng.choice([CG_KEYS, CG_KEYS, CMC_KEYS, CMC_KEYS, OHLCV_KEYS])
    odd = rng.choice([0.0, 0.0, 0.05, 0.3])
    roll = rng.random()
    if roll < 0.5:
        return _row(rng, keys, odd)  # one object, as the API gets it
    n = rng.choice([1, 2, 3, 5, PLAIN_ROWS, PLAIN_ROWS + 1])
    if roll < 0.75:  # the same keys in every row
        template = _row(rng, keys, odd)
        return [{k: _value(rng, k, odd) for k in template} for _ in range(n)]
    return [_row(rng, rng.choice([keys, keys, keys, CG_KEYS, CMC_KEYS]), odd) for _ in range(n)]


def _general(rows, require_identity: bool):
    """What the pandas path gives (as predict_liquidity prepared the rows before)."""
    if isinstance(rows, list) and len(rows) > 1:
        keys = list(rows[0])
        if all(list(r) == keys for r in rows):
            rows = pd.DataFrame.from_records(rows, columns=keys)
    frame, errors = normalize_records(rows, require_identity=require_identity)
    return frame_columns(frame), errors


def _assert_same(got, want, context) -> None:
    (cols, errors), (want_cols, want_errors) = got, want
    assert errors == want_errors, context
    assert list(cols) == list(want_cols), context
    for c, values in cols.items():
        expected = want_cols[c]
        if values.dtype.kind == "f" or expected.dtype.kind == "f":
            assert values.dtype == expected.dtype == np.float64, (c, context)
            assert np.array_equal(values, expected, equal_nan=True), (c, context)
            assert np.array_equal(np.signbit(values), np.signbit(expected)), (c, context)
        elif c == "snapshot_ts":
            assert values.dtype == expected.dtype == np.int64, context
            assert values.tolist() == expected.tolist(), context
        else:
            assert values.dtype == expected.dtype == object, (c, context)
            assert values.tolist() == expected.tolist(), (c, context)


@pytest.mark.parametrize("require_identity", [False, True])
def test_plain_path_matches_pandas_path_on_random_rows(require_identity):
    rng = random.Random(24 + require_identity)
    plain = 0
    for case in range(600):
        rows = _rows(rng)
        context = (case, rows)
        if records._plain_columns(rows, require_identity) is not None:
            plain += 1
        _assert_same(
            request_columns(rows, require_identity=require_identity),
            _general(rows, require_identity),
            context,
        )
    assert plain > 150  # the plain path was exercised, not only the fallback


@pytest.mark.parametrize(
    "rows",
    [
        {"coin": "Bitcoin", "symbol": "btc", "price": 1.0, "24h_volume": 5, "mkt_cap": 50},
        {"price": 1.0, "24h_volume": 5.0, "mkt_cap": 50.0},  # no identity at all
        {"Name": "Ether", "Price": 2.0, "Volume (24h)": 1.0, "Market Cap": 3.0, "% 24h": -120},
        {"coin": "a", "price": -1.0, "24h_volume": float("inf"), "mkt_cap": None, "1h": -2.0},
        {"coin": "a\x00b", "symbol": " ", "price": 1, "24h_volume": 1, "mkt_cap": 1},
        {"price": 1, "24h_volume": 1, "mkt_cap": 1, "date": "yesterday"},
        {"price": 1, "24h_volume": 1, "mkt_cap": 1, "date": " 2024-05-01T00:00:00+05:00 "},
        {"price": 1, "24h_volume": 1, "mkt_cap": 1, "score": float("-inf"), "other": None},
        {},
        [{"price": 1.0}, {"Name": "b", "Price": 2.0}],  # two formats: two groups
        [{"price": 1.0, "mkt_cap": 2.0}, {"mkt_cap": 3.0, "price": 4.0}],  # keys reordered
    ],
)
@pytest.mark.parametrize("require_identity", [False, True])
def test_plain_path_matches_pandas_path_on_chosen_rows(rows, require_identity):
    _assert_same(
        request_columns(rows, require_identity=require_identity),
        _general(rows, require_identity),
        rows,
    )


def test_the_usual_request_takes_the_plain_path():
    row = {"coin": "Bitcoin", "symbol": "BTC", "price": 1.0, "1h": 0.01, "24h": -0.02}
    row.update({"7d": 0.1, "24h_volume": 5e9, "mkt_cap": 5e11, "date": "2024-01-01"})
    assert records._plain_columns(row, False) is not None
    assert records._plain_columns([row] * PLAIN_ROWS, False) is not None
    assert records._plain_columns([row] * (PLAIN_ROWS + 1), False) is None
    assert records._plain_columns({**row, "price": "1.0"}, False) is None  # text: pandas
