"""The project's exception hierarchy.

Every error a user can cause or meet derives from :class:`LiquidityError`, so the CLI,
the DAG tasks and the web app can turn it into a one-line message without a traceback.
The CLI maps each class to its exit code in one table (``liquidity_core.cli.commands``).
"""


class LiquidityError(Exception):
    """Base class for errors that carry a message fit to show a user."""


class ConfigError(LiquidityError):
    """A setting is missing or malformed."""


class DatabaseUnavailable(LiquidityError):
    """The database named by ``LIQUIDITY_DATABASE_URL`` cannot be reached."""


class DatabaseError(LiquidityError):
    """The database answered but failed the operation (a full disk, a lock timeout)."""


class InputError(LiquidityError):
    """Input data (a file, a row, a request) is not acceptable; the message names why."""


class NotFound(LiquidityError):
    """A named entity (model version, coin, file) does not exist."""


class ModelError(LiquidityError):
    """A model artifact is missing, corrupt, or does not match its recorded sha256."""


class NotEnoughData(LiquidityError):
    """There is too little data for the requested operation; the message gives the counts."""


class MonitoringAlert(LiquidityError):
    """The champion's realized accuracy or coverage crossed an alert threshold."""
