"""Property tests of the CSV readers: bad input never crashes them, never half-loads.

Hypothesis generates files of three kinds: random bytes; CSV documents in the three
accepted formats whose cells are drawn from the nasty cases (huge numbers, NaN/inf
text, quoted commas, ``$`` and thousands separators, negative values, unicode, wrong
field counts), written with a random line ending per line, blank lines, an optional BOM
and a random encoding (UTF-8, UTF-16, Latin-1, cp1252); and a 10,000-column file.

Properties:

- ``reader.parse_csv`` returns or raises :class:`~liquidity_core.inputs.formats.FileRejected`
  (a project error with a message), nothing else; every data row is accounted for:
  ``good + rejected == rows_in_file``, each rejected row has a line number and a reason.
- ``ingest.ingest_file`` on a real database never raises; the file is ``loaded`` with
  exactly ``rows_loaded`` rows stored under its id and ``rows_rejected`` rows in
  ``rejected_rows`` (good + existing + rejected == rows in the file), or
  ``quarantined``/``duplicate`` with no row stored under its id.

The number of cases tried is printed at the end of the module.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.env import make_settings
from support.fuzz_inputs import HEADERS, TEXT_COLUMNS

from liquidity_core.ingest import ingest_file
from liquidity_core.inputs.formats import FileRejected
from liquidity_core.inputs.reader import parse_csv
from liquidity_core.store import db

CASES = {"parse": 0, "ingest": 0, "wide": 0}
OUTCOMES: dict[str, int] = {}


valid_numbers = st.floats(min_value=0.001, max_value=1e12, allow_nan=False).map(repr)
numbers = st.one_of(
    valid_numbers,
    valid_numbers,
    valid_numbers,
    st.floats(min_value=0, max_value=1e12, allow_nan=False).map(repr),
    st.integers(min_value=0, max_value=10**15).map(str),
    st.sampled_from(
        [
            "1e308",
            "1e309",
            "-1e309",
            "9" * 400,
            "0",
            "-0",
            "-5",
            "1e-320",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "Infinity",
            "-Infinity",
            "INF",
            "",
            "N/A",
            "null",
            "-",
            "\u2014",
            "1,234",
            '"1,234.5"',
            "$1,234",
            '"$12,345.67"',
            "12%",
            "0x1F",
            "1_000",
            " 42 ",
            "\u0661\u0662",
            "1.2.3",
            "--1",
            "1e",
            "3.4e+38",
            "\u00a01\u00a0",
        ]
    ),
)
names = st.sampled_from(["Bitcoin", "Ethereum", "Solana", "Dogecoin", "Tether", "XRP"])
texts = st.one_of(
    names,
    names,
    names,
    st.sampled_from(
        [
            "Bitcoin",
            "BTC",
            "Ether, classic",
            '"Quoted, name"',
            "",
            "  ",
            "🚀",
            "Caf\u00e9",
            "a\u0000b",
            "=cmd|' /C calc'!A0",
            "<script>",
            "'; DROP TABLE x",
        ]
    ),
    st.text(min_size=0, max_size=12),
)
dates = st.sampled_from(
    [
        "2024-01-01",
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
        "2024-01-02",
        "2024-02-30",
        "01/02/2024",
        "",
        "2024-01-01T05:00:00Z",
        "2024-01-01 25:00",
        "yesterday",
        "1970-01-01",
        "9999-12-31",
        "2024-01-01+14:00",
    ]
)
line_endings = st.sampled_from(["\n"] * 6 + ["\r\n"] * 3 + ["\r"])
encodings = st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "latin-1", "cp1252"])


def _quote(cell: str) -> str:
    if any(c in cell for c in ',"\r\n') and not (cell.startswith('"') and cell.endswith('"')):
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def csv_documents(draw) -> bytes:
    kind = draw(st.sampled_from(sorted(HEADERS)))
    header = list(HEADERS[kind])
    if draw(st.booleans()):
        header = [
            draw(st.sampled_from([h, h.upper(), f" {h} ", h.replace("_", " ")])) for h in header
        ]
    if draw(st.integers(0, 4)) == 0:
        header.append(draw(st.sampled_from(["sentiment", "Extra Col", "notes", ""])))
    n_rows = draw(st.integers(0, 25))
    lines = [",".join(_quote(h) for h in header)]
    for _ in range(n_rows):
        if draw(st.integers(0, 9)) == 0:
            lines.append("")  # an empty line
            continue
        cells = []
        for h in header:
            folded = h.strip().lower()
            if folded in TEXT_COLUMNS or folded.replace(" ", "_") in TEXT_COLUMNS:
                cells.append(draw(dates if "date" in folded else texts))
            else:
                cells.append(draw(numbers))
        width = draw(st.integers(0, 20))
        if width == 0:
            cells = cells[: draw(st.integers(0, len(cells)))]  # too few fields
        elif width == 1:
            cells = cells + ["surplus"]  # too many fields
        lines.append(",".join(_quote(c) for c in cells))
    text = ""
    uniform = draw(st.sampled_from(["\n", "\r\n", None, None]))  # None: mixed
    for line in lines:
        text += line + (uniform or draw(line_endings))
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # no final line break
    if draw(st.integers(0, 5)) == 0:
        text = "\ufeff" + text
    encoding = draw(encodings)
    return text.encode(encoding, errors="replace")


any_file = st.one_of(csv_documents(), csv_documents(), st.binary(max_size=3000))


def _check_parsed(data: bytes) -> None:
    try:
        parsed = parse_csv(data)
    except FileRejected as exc:
        assert str(exc).strip(), "a rejection must say why"
        OUTCOMES["rejected file"] = OUTCOMES.get("rejected file", 0) + 1
        return
    good, bad = len(parsed.rows), len(parsed.rejected)
    assert good + bad == parsed.rows_in_file, (good, bad, parsed.rows_in_file)
    if bad:
        assert parsed.rejected["reason"].map(bool).all()
        assert (parsed.rejected["line"] >= 2).all()
        assert parsed.rejected["line"].is_unique
    if good:
        for col in ("price", "volume_24h", "market_cap"):
            values = parsed.rows[col].to_numpy(dtype=float)
            assert all(math.isfinite(v) and v >= 0 for v in values), (col, values)
        assert not parsed.rows.duplicated(["coin_id", "snapshot_ts"]).any()
    OUTCOMES["parsed file"] = OUTCOMES.get("parsed file", 0) + 1


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=any_file)
@example(data=b"")
@example(data=b"\xef\xbb\xbf")
@example(data=b"\xff\xfe")
@example(data=b"coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\r\n\r\n\n\r")
@example(data=b'coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\n"unterminated,BTC,1')
@example(
    data=b"coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\nA,B,1,0,0,0,1,"
    + b"9" * 5000
    + b",2024-01-01\n"
)
def test_parse_csv_never_crashes_and_accounts_for_every_row(data):
    CASES["parse"] += 1
    _check_parsed(data)


# A blank line, rows with a surplus field, a lone CR, then a quoted line break: found by
# the property above (it made parse_csv raise csv.Error; fixed in formats).
LONE_CR = (
    b"coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\n\n"
    b"Bitcoin,BTC,0.0,0.0,0.0,0.0,0.0,0.0,2024-01-01,surplus\n"
    b"Bitcoin,BTC,0.0,0.0,0.0,0.0,0.0,0.0,2024-01-01,surplus\r"
    b'Bitcoin,"\n",0.0,0.0,0.0,0.0,0.0,0.0,2024-01-01,surplus\n'
)


def test_lone_cr_before_a_quoted_line_break():
    CASES["parse"] += 1
    _check_parsed_strict(LONE_CR)


def _check_parsed_strict(data: bytes) -> None:
    try:
        parsed = parse_csv(data)
    except FileRejected:
        return
    assert len(parsed.rows) + len(parsed.rejected) == parsed.rows_in_file


def test_cr_line_endings_load():
    CASES["parse"] += 1
    data = (
        b"coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\r"
        b"Bitcoin,BTC,40859.46,0.022,0.03,0.055,35390763321.0,770991461396.0,2022-03-16\r"
        b"Ethereum,ETH,2744.41,0.024,0.034,0.065,19748695312.0,327104429349.0,2022-03-16\r"
    )
    try:
        parsed = parse_csv(data)
    except FileRejected as exc:
        raise AssertionError(f"CR line endings rejected: {exc}") from None
    assert len(parsed.rows) == 2


# Extra numeric columns are joined to the frame once (adding them one by one was quadratic,
# tens of seconds and a fragmentation warning for 10,000 columns).
def test_ten_thousand_columns():
    header = HEADERS["coingecko"] + [f"extra_{i}" for i in range(9991)]
    row = ["Bitcoin", "BTC", "1", "0", "0", "0", "10", "100", "2024-01-01"] + ["1.5"] * 9991
    short = ["Ether", "ETH", "1", "0", "0", "0", "10", "100", "2024-01-01"]
    data = ("\n".join([",".join(header), ",".join(row), ",".join(short)]) + "\n").encode()
    engine, s, folder = _fresh_store()
    path = folder / "wide.csv"
    path.write_bytes(data)
    result = ingest_file(path, engine=engine, settings=s)
    CASES["wide"] += 1
    _check_ingested(engine, result)
    only_text = ",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join(["x"] * 10_000)
    CASES["wide"] += 1
    with pytest.raises(FileRejected, match="header"):
        parse_csv(only_text.encode())


# --- through the database -------------------------------------------------------------------

_STORE: dict = {}


def _fresh_store():
    """One SQLite store per module (hypothesis examples share it: duplicates and overlaps
    between examples are part of the test)."""
    if not _STORE:
        root = Path(tempfile.mkdtemp(prefix="liquidity_fuzz_"))
        s = make_settings(root, f"sqlite:///{root / 'fuzz.db'}")
        engine = db.get_engine(s.database_url)
        db.upgrade(engine)
        _STORE.update(engine=engine, settings=s, folder=s.ingest_dir, n=0)
    return _STORE["engine"], _STORE["settings"], _STORE["folder"]


def _check_ingested(engine, result) -> None:
    assert result.status in ("loaded", "duplicate", "quarantined"), result
    with db.transaction(engine) as conn:
        stored = conn.execute(
            sa.text("SELECT COUNT(*) FROM market_snapshots WHERE source_file_id = :f"),
            {"f": result.file_id},
        ).scalar_one()
        rejected = conn.execute(
            sa.text("SELECT COUNT(*) FROM rejected_rows WHERE file_id = :f"), {"f": result.file_id}
        ).scalar_one()
        ledger = conn.execute(
            sa.text("SELECT status, rows_loaded, rows_rejected FROM ingest_files WHERE id = :f"),
            {"f": result.file_id},
        ).one()
    assert ledger.status == result.status
    if result.status == "loaded":
        assert stored == result.rows_loaded == ledger.rows_loaded
        assert rejected == result.rows_rejected == ledger.rows_rejected
        assert (
            result.rows_loaded + result.rows_existing + result.rows_rejected == result.rows_in_file
        ), result
    else:
        assert stored == 0, f"{result.status} file has {stored} stored rows"
        assert result.error
    OUTCOMES[f"ingest {result.status}"] = OUTCOMES.get(f"ingest {result.status}", 0) + 1


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(csv_documents(), csv_documents(), csv_documents(), st.binary(max_size=1000)))
def test_ingest_file_is_all_or_nothing_with_every_row_accounted(data):
    engine, s, folder = _fresh_store()
    _STORE["n"] += 1
    path = folder / f"drop_{_STORE['n']}.csv"
    path.write_bytes(data)
    CASES["ingest"] += 1
    result = ingest_file(path, engine=engine, settings=s)
    _check_ingested(engine, result)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if _STORE:
        _STORE["engine"].dispose()
    total = sum(CASES.values())
    print(f"\nbad-input cases tried: {CASES} (total {total}); outcomes: {OUTCOMES}")
