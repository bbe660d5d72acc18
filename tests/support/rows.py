"""A valid one-row prediction request body (CoinGecko field names), shared by the web tests."""

ROW = {
    "coin": "Bitcoin",
    "symbol": "BTC",
    "price": 40859.46,
    "1h": 0.022,
    "24h": 0.03,
    "7d": 0.055,
    "24h_volume": 35390763321.0,
    "mkt_cap": 770991461396.0,
}
