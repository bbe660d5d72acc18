"""schemathesis hooks for tests/test_openapi_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

Two rules of the predict input are beyond what an OpenAPI 3.0 schema can say, so the
document says them in words and the server refuses them with a 422 naming the key:

- column names match case-, whitespace- and underscore-insensitively, so a row giving two
  keys that fold to one name (``Price`` and ``price``, or ``""`` and ``"_"``), both not
  null, is refused;
- text in a column other than the documented ones is read as a number when it is one
  (``"$1,234"`` in ``Market Cap``), so numeric text there is held to the numbers' range
  (finite; 0 or 1e-30 to 1e18 in size), e.g. ``"1e999"`` is refused.

Generated bodies that break one of them are left out here, since the checks would take
the schema's silence for consent. Every other generated body is sent.
"""

from __future__ import annotations

import math

import schemathesis

from liquidity_core.inputs.formats import normalize_header
from webapp.api import MAGNITUDE_RANGE
from webapp.openapi import schemas

DOCUMENTED = frozenset(schemas()["InputRow"]["properties"])


def folds_twice(row: object) -> bool:
    """Whether ``row`` (an object) has two non-null keys that fold to the same name."""
    if not isinstance(row, dict):
        return False
    seen: set[str] = set()
    for key, value in row.items():
        if value is None:
            continue
        folded = normalize_header(key)
        if folded in seen:
            return True
        seen.add(folded)
    return False


def numeric_text_out_of_range(row: object) -> bool:
    """Whether an undocumented column of ``row`` holds text that reads as a number outside
    the range numbers must be in."""
    if not isinstance(row, dict):
        return False
    low, high = MAGNITUDE_RANGE
    for key, value in row.items():
        if key in DOCUMENTED or not isinstance(value, str):
            continue
        text = value.strip().replace("$", "").replace(",", "").replace("%", "")
        try:
            size = abs(float(text))
        except ValueError:
            continue
        if math.isnan(size):
            continue  # read as missing
        if not math.isfinite(size) or (size != 0 and not low <= size <= high):
            return True
    return False


@schemathesis.hook
def filter_body(context, body) -> bool:
    rows = body if isinstance(body, list) else [body]
    return not any(folds_twice(row) or numeric_text_out_of_range(row) for row in rows)
