"""crypto-liquidity: forecast cryptocurrency liquidity and keep the forecast honest.

Every DAG task, CLI command and web route is a thin shell over a function in this
package. Modules, in the order data flows through them:

- ``settings``  -- the one place that reads the environment.
- ``db``        -- engines, transactions and the ``sql/`` migration runner.
- ``formats``   -- CSV format detection and row checks (three input formats).
- ``ingest``    -- loading files into ``market_snapshots`` exactly once.
- ``demo``      -- synthetic CoinGecko-format drops for demos, tests and benchmarks.
"""

__version__ = "0.1.0"
