"""crypto-liquidity: forecast cryptocurrency liquidity and keep the forecast honest.

One package per stage, data flowing down through them: ``store``, ``inputs``, ``ingest``,
``features``, ``learn``, ``registry``, ``training``, ``serving``, ``monitoring``,
``reporting``, with ``cli`` on top; ``settings`` (the one place that reads the
environment), ``progress`` (the reporter long work calls) and ``errors`` underneath.
Which package may import which is written once, as the import-linter contracts in
``pyproject.toml`` (``[tool.importlinter]``), and checked by the tests. Each package's
docstring says what it holds.

Every DAG task, CLI command and web route is a thin shell over one function here.
"""

__version__ = "0.1.0"
