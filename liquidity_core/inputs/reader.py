"""CSV files: bytes in, a :class:`ParsedFile` of checked rows and rejected lines out.

:func:`parse_csv` decodes the bytes (:func:`decode_csv_bytes`), detects the format from
the header, reads the rows with pandas (falling back to the exact ``csv`` reader for the
few lines pandas cannot split) and checks them with :func:`.checks.check_frame`.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from liquidity_core.inputs.checks import check_frame
from liquidity_core.inputs.formats import (
    IDENTITY_FIELDS,
    MISSING_TOKENS,
    FileRejected,
    FormatSpec,
    detect_format,
    expected_formats_text,
    normalize_header,
)


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
    header = _read_header(text)
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
    _reject_repeated_keys(frame, good, reasons)
    rejected = _rejected_lines(text, lines, good, reasons, skipped, len(names))
    rows = frame.loc[good].reset_index(drop=True)
    return ParsedFile(
        spec=spec,
        rows=rows,
        rejected=rejected,
        rows_in_file=rows_in_file,
        extra_columns=checked.extra_columns,
        ignored_columns=checked.ignored_columns,
    )


def _read_header(text: str) -> list[str]:
    """The header's column names, stripped; rejects an empty file, a header that is not
    CSV and a column named twice (up to :func:`.formats.normalize_header`)."""
    if not text or text.isspace():
        raise FileRejected(
            f"empty file: no header and no rows; expected one of: {expected_formats_text()}"
        )
    end = _LINE_BREAK.search(text)
    first = text[: end.start()] if end else text
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
    return header


def _reject_repeated_keys(frame: pd.DataFrame, good: np.ndarray, reasons: np.ndarray) -> None:
    """A (coin, time) twice in one file: the first good occurrence wins; the later ones
    are marked bad in ``good`` and get their reason in ``reasons`` (both in place)."""
    keyed = frame.loc[good, ["coin_id", "snapshot_ts", "line"]]
    dup = keyed.duplicated(["coin_id", "snapshot_ts"], keep="first").to_numpy()
    if dup.any():
        first = keyed.groupby(["coin_id", "snapshot_ts"], sort=False)["line"].transform("first")
        dup_pos = keyed.index.to_numpy()[dup]
        reasons[dup_pos] = [
            f"duplicate of line {int(f)} (same coin and time)" for f in first.to_numpy()[dup]
        ]
        good[dup_pos] = False


def _rejected_lines(
    text: str, lines: np.ndarray, good: np.ndarray, reasons: np.ndarray, skipped, n_fields: int
) -> pd.DataFrame:
    """``line``, ``reason`` and ``raw_line`` of the rows not ``good`` and of the lines
    skipped for too many fields, in line order."""
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
        short = (counts < n_fields) & ~rejected["reason"].str.startswith("has ").to_numpy(bool)
        if short.any():
            rejected.loc[short, "reason"] = [
                f"has {c} fields, expected {n_fields}; {r}"
                for c, r in zip(counts[short], rejected.loc[short, "reason"], strict=True)
            ]
    return rejected


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
    end = text.find("\n")
    if text and (text if end < 0 else text[:end]).strip() == "":
        numbers.append(1)
    for m in _BLANK_AFTER.finditer(text):
        if m.start() == len(text) - 1:
            break  # the final line end: nothing follows it, so no line to number
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
