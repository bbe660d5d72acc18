"""Small market-data files in each input format, written from ``(name, symbol, date,
market cap, volume)`` rows: what the ingest and coin-identity tests drop."""

from __future__ import annotations

from pathlib import Path


def cg_file(path: Path, rows) -> Path:
    lines = ["coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date"]
    lines += [f"{n},{s},1.0,0.01,0.02,0.03,{v},{c},{d}" for n, s, d, c, v in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cmc_file(path: Path, rows) -> Path:
    lines = [
        "Rank,Name,Symbol,Market Cap,Price,Circulating Supply,Volume (24h),% 1h,% 24h,"
        "% 7d,snapshot_date"
    ]
    lines += [
        f'1,{n},{s},"${c:,.0f}",$1.00,1,"${v:,.0f}",1.0%,2.0%,3.0%,{d}' for n, s, d, c, v in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ohlcv_file(path: Path, rows) -> Path:
    lines = ["SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"]
    lines += [
        f"{i + 1},{n},{s},{d} 23:59:59,1.1,0.9,1.0,1.0,{v},{c}"
        for i, (n, s, d, c, v) in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


WRITERS = {"coingecko": cg_file, "cmc": cmc_file, "ohlcv": ohlcv_file}
