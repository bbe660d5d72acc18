"""liquidity_core.inputs.formats: header detection, row checks, canonical columns."""

import math

import numpy as np
import pandas as pd
import pytest

from liquidity_core.inputs.formats import (
    CMC,
    COINGECKO,
    OHLCV,
    FileRejected,
    coin_slug,
    detect_format,
)
from liquidity_core.inputs.reader import parse_csv
from liquidity_core.inputs.records import normalize_records

CG_HEADER = "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date"


def cg(*rows: str, header: str = CG_HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


# --- detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "spec"),
    [
        (CG_HEADER.split(","), COINGECKO),
        (
            ["COIN", " Symbol ", "Price", "1H", "24h", "7D", "24h Volume", "Mkt_Cap", "Date"],
            COINGECKO,
        ),
        (
            [
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
            CMC,
        ),
        (
            [
                "name",
                "symbol",
                "marketcap",
                "price",
                "volume(24h)",
                "%1h",
                "%24h",
                "%7d",
                "Snapshot Date",
            ],
            CMC,
        ),  # optional columns absent, spacing folded
        (
            [
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
            OHLCV,
        ),
        (
            [
                "name",
                "SYMBOL",
                "date",
                "high",
                "low",
                "open",
                "close",
                "volume",
                "marketcap",
                "sentiment",
            ],
            OHLCV,
        ),
    ],
)
def test_detect_format_is_case_and_space_insensitive(header, spec):
    assert detect_format(header) is spec


def test_unknown_header_names_closest_format_and_what_is_expected():
    with pytest.raises(FileRejected) as err:
        detect_format(["coin", "symbol", "price", "1h", "24h", "7d", "volume", "date"])
    msg = str(err.value)
    assert "unknown header" in msg
    assert "closest is CoinGecko snapshot" in msg and "'24h_volume'" in msg and "'mkt_cap'" in msg
    assert CG_HEADER in msg and "Volume (24h)" in msg and "Marketcap" in msg


# --- the real samples -------------------------------------------------------------------------


def test_real_samples_parse_with_the_rows_missing_volume_rejected(sample_files):
    parsed = parse_csv(sample_files[0].read_bytes())
    assert parsed.spec is COINGECKO
    assert parsed.rows_in_file == 500
    assert len(parsed.rows) == 497
    assert parsed.rejected["line"].tolist() == [312, 418, 474]
    assert set(parsed.rejected["reason"]) == {"24h_volume: missing"}
    assert parsed.rejected["raw_line"][0].startswith("BNB48 Club Token,KOGE,75.36,")
    btc = parsed.rows.iloc[0]
    assert (btc["coin_id"], btc["symbol"], btc["price"]) == ("bitcoin", "BTC", 40859.46)
    assert btc["snapshot_ts"] == pd.Timestamp("2022-03-16", tz="UTC")
    assert btc["change_24h"] == pytest.approx(0.03)  # fractions stay fractions
    assert btc["line"] == 2


def test_symbol_collisions_in_the_samples_get_distinct_coin_ids(sample_files):
    rows = parse_csv(sample_files[0].read_bytes()).rows
    feg = rows[rows["symbol"] == "FEG"]
    assert sorted(feg["coin_id"]) == ["feg-token", "feg-token-bsc"]
    assert rows["coin_id"].is_unique


def test_coin_slug():
    assert coin_slug("Pundi X [OLD]") == "pundi-x-old"
    assert coin_slug("THORChain (ERC20)") == "thorchain-erc20"
    assert coin_slug("Café Coin") == "cafe-coin"
    assert coin_slug("比特币").startswith("coin-") and coin_slug("比特币") == coin_slug("比特币")


# --- other formats ------------------------------------------------------------------------


def test_cmc_percents_dollars_commas_and_date_styles():
    data = (
        b"Rank,Name,Symbol,Market Cap,Price,Circulating Supply,Volume (24h),% 1h,% 24h,% 7d,"
        b"snapshot_date\n"
        b'1,Bitcoin,BTC,"$770,991,461,396","$40,859.46","18,980,000","$35,390,763,321",'
        b"2.2%,3.0,-5.5%,2022-03-16\n"
        b"2,Ethereum,ETH,$327104429349,$2744.41,1,$19748695312,0.1,0.2,0.3,20220316\n"
    )
    parsed = parse_csv(data)
    assert parsed.spec is CMC and parsed.rejected.empty
    btc, eth = parsed.rows.iloc[0], parsed.rows.iloc[1]
    assert btc["market_cap"] == 770991461396.0 and btc["price"] == 40859.46
    assert btc["volume_24h"] == 35390763321.0
    assert (btc["change_1h"], btc["change_24h"], btc["change_7d"]) == pytest.approx(
        (0.022, 0.03, -0.055)
    )
    assert eth["snapshot_ts"] == btc["snapshot_ts"] == pd.Timestamp("2022-03-16", tz="UTC")
    assert parsed.extra_columns == []  # Rank and Circulating Supply are known, not extras


def test_ohlcv_changes_are_derived_per_coin_from_closes():
    lines = ["SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"]
    closes = [100, 110, 99, 120, 130, 140, 150, 160, 176]
    for i, c in enumerate(closes):
        lines.append(f"{i + 1},Bitcoin,BTC,2021-01-{i + 1:02d} 23:59:59,1,1,1,{c},5,1000")
    lines.append("99,Ether,ETH,2021-01-02 23:59:59,1,1,1,50,5,1000")
    parsed = parse_csv(("\n".join(lines) + "\n").encode())
    assert parsed.spec is OHLCV and parsed.rejected.empty
    btc = parsed.rows[parsed.rows["coin_id"] == "bitcoin"].reset_index(drop=True)
    assert math.isnan(btc.loc[0, "change_24h"])  # no previous close in the file
    assert btc.loc[1, "change_24h"] == pytest.approx(0.10)
    assert btc.loc[2, "change_24h"] == pytest.approx(99 / 110 - 1)
    assert btc["change_7d"].isna()[:7].all()
    assert btc.loc[7, "change_7d"] == pytest.approx(160 / 100 - 1)
    assert btc.loc[8, "change_7d"] == pytest.approx(176 / 110 - 1)
    assert btc["change_1h"].isna().all()
    assert btc.loc[0, "price"] == 100 and btc.loc[0, "volume_24h"] == 5
    assert btc.loc[0, "snapshot_ts"] == pd.Timestamp("2021-01-01 23:59:59", tz="UTC")
    eth = parsed.rows[parsed.rows["coin_id"] == "ether"]
    assert eth["change_24h"].isna().all()  # Bitcoin's closes are not Ether's


def test_ohlcv_keeps_the_days_range_as_an_extra_and_a_bad_range_costs_only_that():
    """log(High / Low) becomes ``x_hl_range`` (a volatility feature); a missing, inverted
    or non-positive High/Low leaves it NaN and the row loads, as before the range was kept."""
    header = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"
    rows = [
        "1,Bitcoin,BTC,2021-01-01,110,100,1,105,5,1000",
        "2,Bitcoin,BTC,2021-01-02,100,110,1,105,5,1000",  # high below low
        "3,Bitcoin,BTC,2021-01-03,,100,1,105,5,1000",
        "4,Bitcoin,BTC,2021-01-04,110,0,1,105,5,1000",
        "5,Bitcoin,BTC,2021-01-05,abc,100,1,105,5,1000",
    ]
    parsed = parse_csv(("\n".join([header, *rows]) + "\n").encode())
    assert parsed.rejected.empty and len(parsed.rows) == 5
    hl = parsed.rows["x_hl_range"].to_numpy()
    assert hl[0] == pytest.approx(math.log(1.1))
    assert np.isnan(hl[1:]).all()
    other = parse_csv(cg("Bitcoin,BTC,1,0.1,0.1,0.1,5,1000,2022-03-16"))
    assert "x_hl_range" not in other.rows  # only formats with a range get one


def test_timestamps_become_utc():
    parsed = parse_csv(
        cg(
            "A,A,1,0,0,0,1,1,2022-03-16T05:00:00+02:00",
            "B,B,1,0,0,0,1,1,2022-03-16 03:00:00",
            "C,C,1,0,0,0,1,1,20220316",
            "D,D,1,0,0,0,1,1,2022-03-16T03:00:00Z",
        )
    )
    assert parsed.rows["snapshot_ts"].tolist() == [
        pd.Timestamp("2022-03-16 03:00", tz="UTC"),
        pd.Timestamp("2022-03-16 03:00", tz="UTC"),
        pd.Timestamp("2022-03-16 00:00", tz="UTC"),
        pd.Timestamp("2022-03-16 03:00", tz="UTC"),
    ]


# --- bad rows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("Bitcoin,BTC,abc,0,0,0,1,1,2022-03-16", "price: 'abc' is not a number"),
        ("Bitcoin,BTC,-1,0,0,0,1,1,2022-03-16", "price: -1 is negative"),
        ("Bitcoin,BTC,1,0,0,0,-5,1,2022-03-16", "24h_volume: -5 is negative"),
        ("Bitcoin,BTC,1,0,0,0,5,-1,2022-03-16", "mkt_cap: -1 is negative"),
        ("Bitcoin,BTC,inf,0,0,0,5,1,2022-03-16", "price: inf is not finite"),
        ("Bitcoin,BTC,1,0,x,0,5,1,2022-03-16", "24h: 'x' is not a number"),
        ("Bitcoin,BTC,1,0,0,-1.5,5,1,2022-03-16", "7d: -1.5 is below -100%"),
        (",BTC,1,0,0,0,5,1,2022-03-16", "coin: missing"),
        ("Bitcoin,  ,1,0,0,0,5,1,2022-03-16", "symbol: missing"),
        ("Bitcoin,BTC,,0,0,0,5,1,2022-03-16", "price: missing"),
        ("Bitcoin,BTC,1,0,0,0,5,1,2022-02-30", "date: '2022-02-30' is not a date"),
        ("Bitcoin,BTC,1,0,0,0,5,1,", "date: missing"),
        ("Bitcoin,BTC,1,0,0,0,5,1,2022-03-16,surplus", "has 10 fields, expected 9"),
        ("Bitcoin,BTC,1,0,0", "has 5 fields, expected 9"),
    ],
)
def test_each_kind_of_bad_row_is_rejected_with_its_line_and_reason(row, reason):
    parsed = parse_csv(cg("Good,GD,1,0,0,0,5,1,2022-03-16", row, "Fine,FN,2,0,0,0,5,1,2022-03-16"))
    assert parsed.rows["coin_id"].tolist() == ["good", "fine"]  # the good rows still load
    assert parsed.rejected["line"].tolist() == [3]
    assert reason in parsed.rejected.loc[0, "reason"]
    assert parsed.rejected.loc[0, "raw_line"] == row
    assert parsed.rows_in_file == 3


def test_several_problems_in_one_row_are_all_named():
    parsed = parse_csv(cg(",BTC,-1,0,0,0,abc,1,nope"))
    reason = parsed.rejected.loc[0, "reason"]
    for part in (
        "coin: missing",
        "price: -1 is negative",
        "24h_volume: 'abc' is not a number",
        "date: 'nope' is not a date",
    ):
        assert part in reason


def test_a_coin_twice_at_the_same_time_keeps_the_first():
    parsed = parse_csv(
        cg("Bitcoin,BTC,1,0,0,0,5,1,2022-03-16", "bitcoin,BTC,2,0,0,0,5,1,2022-03-16T00:00:00Z")
    )
    assert parsed.rows["price"].tolist() == [1.0]
    assert parsed.rejected.loc[0, "reason"] == "duplicate of line 2 (same coin and time)"


def test_blank_lines_are_skipped_and_line_numbers_stay_true():
    parsed = parse_csv(
        cg("", "A,A,1,0,0,0,1,1,2022-03-16", "", "", "B,B,x,0,0,0,1,1,2022-03-16", "")
    )
    assert parsed.rows_in_file == 2
    assert parsed.rows["line"].tolist() == [3]
    assert parsed.rejected["line"].tolist() == [6]


def test_quoted_line_breaks_keep_line_numbers_true():
    parsed = parse_csv(
        cg('"Multi\nLine Coin",ML,1,0,0,0,1,1,2022-03-16', "B,B,x,0,0,0,1,1,2022-03-16")
    )
    assert parsed.rows["coin_name"].tolist() == ["Multi\nLine Coin"]
    assert parsed.rejected["line"].tolist() == [4]


def test_missing_tokens_in_optional_changes_are_null_not_errors():
    parsed = parse_csv(cg("A,A,1,,N/A,-,1,1,2022-03-16"))
    assert parsed.rejected.empty
    assert parsed.rows[["change_1h", "change_24h", "change_7d"]].isna().all(axis=None)


def test_extra_numeric_columns_are_kept_and_text_columns_ignored():
    parsed = parse_csv(
        cg(
            "A,A,1,0,0,0,1,1,2022-03-16,0.5,hello,",
            "B,B,1,0,0,0,1,1,2022-03-16,,bye,",
            header=CG_HEADER + ",Sentiment Score,note,",
        )
    )
    assert parsed.extra_columns == ["Sentiment Score"]
    assert parsed.ignored_columns == ["note"]
    assert parsed.rows["x_sentiment_score"].tolist()[0] == 0.5
    assert np.isnan(parsed.rows["x_sentiment_score"].tolist()[1])


# --- bad files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"\n\n  \n", "empty file"),
        (CG_HEADER.encode() + b"\n", "no rows: the file has a CoinGecko snapshot header"),
        (CG_HEADER.encode() + b"\n\n\n", "no rows"),
        (b"foo,bar\n1,2\n", "unknown header 'foo,bar'"),
        (
            CG_HEADER.encode() + b"\nCaf\xe9,C,1,0,0,0,1,1,2022-03-16\n",
            "unreadable encoding: byte 0xe9 at offset",
        ),
        ("coin,symbol\n".encode("utf-16"), "unreadable encoding"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "unreadable encoding: NUL byte"),
        ((CG_HEADER + ",Price\n").encode(), "duplicate column 'Price' (also 'price')"),
        ((CG_HEADER + '\n"A,A,1,0,0,0,1,1,2022-03-16\n').encode(), "cannot parse"),
    ],
)
def test_bad_files_are_rejected_with_a_reason(data, message):
    with pytest.raises(FileRejected) as err:
        parse_csv(data)
    assert message in str(err.value)


def test_utf8_bom_is_accepted():
    parsed = parse_csv(b"\xef\xbb\xbf" + cg("A,A,1,0,0,0,1,1,2022-03-16"))
    assert len(parsed.rows) == 1


# --- normalize_records ----------------------------------------------------------------------


def test_normalize_records_accepts_every_format():
    frame, errors = normalize_records(
        [
            {
                "coin": "Bitcoin",
                "symbol": "btc",
                "price": 100,
                "1h": 0.01,
                "24h": 0.02,
                "7d": 0.03,
                "24h_volume": 10,
                "mkt_cap": 1000,
                "date": "2022-03-16",
            },
            {
                "Name": "Ether",
                "Symbol": "ETH",
                "Price": "$1,000",
                "% 24h": "2%",
                "Volume (24h)": "$5,000",
                "Market Cap": "50,000",
                "snapshot_date": 20220316,
            },
            {
                "Name": "Doge",
                "Symbol": "DOGE",
                "Date": "2022-03-16",
                "Close": 0.1,
                "Volume": 7,
                "Marketcap": 70,
                "mood": 0.7,
            },
        ]
    )
    assert errors == []
    assert frame["coin_id"].tolist() == ["bitcoin", "ether", "doge"]
    assert frame["symbol"].tolist() == ["BTC", "ETH", "DOGE"]
    assert frame["price"].tolist() == [100.0, 1000.0, 0.1]
    assert frame["change_24h"].tolist()[:2] == pytest.approx([0.02, 0.02])
    assert frame["volume_24h"].tolist() == [10.0, 5000.0, 7.0]
    assert (frame["snapshot_ts"] == pd.Timestamp("2022-03-16", tz="UTC")).all()
    assert frame["x_mood"].tolist()[2] == 0.7 and np.isnan(frame["x_mood"].tolist()[0])


def test_normalize_records_reports_each_field_with_the_users_name():
    frame, errors = normalize_records(
        [
            {"Price": "abc", "Volume (24h)": -1, "Market Cap": float("inf")},
            {"price": 1, "24h_volume": 1},
            "not a dict",
        ],
        require_identity=False,
    )
    assert {"index": 0, "field": "Price", "problem": "'abc' is not a number"} in errors
    assert {"index": 0, "field": "Volume (24h)", "problem": "-1 is negative"} in errors
    assert {"index": 0, "field": "Market Cap", "problem": "inf is not finite"} in errors
    assert {"index": 1, "field": "mkt_cap", "problem": "missing"} in errors
    assert {"index": 2, "field": "", "problem": "is not an object"} in errors
    assert not any(e["field"] in ("coin", "symbol", "date") for e in errors)
    assert len(frame) == 3 and np.isnan(frame.loc[0, "price"])


def test_normalize_records_requires_identity_by_default():
    _, errors = normalize_records([{"price": 1, "24h_volume": 1, "mkt_cap": 1}])
    assert {e["field"] for e in errors} == {"coin", "symbol", "date"}
    _, errors = normalize_records(
        pd.DataFrame({"price": [1.0], "24h_volume": [1.0], "mkt_cap": [2.0]}),
        require_identity=False,
    )
    assert errors == []


def test_normalize_records_flags_a_field_given_twice():
    _, errors = normalize_records(
        [{"price": 1, "Price": 2, "24h_volume": 1, "mkt_cap": 1}], require_identity=False
    )
    assert errors == [{"index": 0, "field": "Price", "problem": "given twice (also as 'price')"}]


def test_normalize_records_rejects_nested_values_without_crashing():
    frame, errors = normalize_records(
        [
            {
                "coin": {"a": 1},
                "symbol": ["X"],
                "price": [1],
                "24h_volume": 1,
                "mkt_cap": 1,
                "date": "2022-03-16",
            }
        ]
    )
    assert {
        "index": 0,
        "field": "coin",
        "problem": "must be a single value, not a list or object",
    } in errors
    assert {
        "index": 0,
        "field": "price",
        "problem": "must be a single value, not a list or object",
    } in errors
    assert {"index": 0, "field": "price", "problem": "missing"} in errors
    assert len(frame) == 1


def test_cr_line_endings_and_a_stray_cr_are_read_as_line_breaks():
    data = (
        b"coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date\r"
        b"Bitcoin,BTC,1,0,0,0,5,10,2022-03-16\r"
        b"Ether,ETH,abc,0,0,0,5,10,2022-03-16\r"
    )
    parsed = parse_csv(data)
    assert parsed.rows["coin_id"].tolist() == ["bitcoin"]
    assert parsed.rejected[["line", "raw_line"]].values.tolist() == [
        [3, "Ether,ETH,abc,0,0,0,5,10,2022-03-16"]
    ]
    stray = parse_csv(
        cg(
            "A,A,1,0,0,0,1,1,2022-03-16,surplus\rB,B,1,0,0,0,1,1,2022-03-16",
            '"C\nCoin",C,1,0,0,0,1,1,2022-03-16',
        )
    )
    assert sorted(stray.rows["coin_id"]) == ["b", "c-coin"]
    assert stray.rejected["reason"].tolist() == ["has 10 fields, expected 9"]
