"""The one module that reads settings from the environment.

``load_settings()`` returns a frozen :class:`Settings`; DAGs, the CLI and the web app take
it as input. Nothing here does I/O at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

from liquidity_core.errors import ConfigError

#: The repository root (the package is installed in editable mode from it).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


#: Whether a challenger is published refitted on its holdout rows too (``LIQUIDITY_REFIT``).
#: On: in a replay through stored forecasts (``bench/refit.py``) its realized skill was
#: not worse on either dev panel (daily 0.182 both ways, monthly 0.278 against 0.270).
REFIT_DEFAULT = True


def flag(raw: str) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (any case) as a bool."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def worker_cores() -> int:
    """The CPU cores this process may run on (its affinity, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Settings:
    """Resolved settings.

    Attributes
    ----------
    database_url : str
        SQLAlchemy URL of the liquidity database (``LIQUIDITY_DATABASE_URL``).
    ingest_dir : Path
        Folder where CSV drops land (``LIQUIDITY_INGEST_DIR``).
    model_dir : Path
        Shared model folder: ``versions/<v>/`` and ``current.json`` (``LIQUIDITY_MODEL_DIR``).
    var_dir : Path
        Root of the embedded defaults (``LIQUIDITY_VAR_DIR``).
    cv_splits : int
        Number of time-ordered CV folds in the grid search (``LIQUIDITY_CV_SPLITS``).
    holdout_snapshots : int
        Newest snapshots kept aside as the holdout (``LIQUIDITY_HOLDOUT_SNAPSHOTS``).
    promotion_margin : float
        Holdout R² by which a challenger must beat the champion (``LIQUIDITY_PROMOTION_MARGIN``).
    max_train_rows_per_tree : int
        ``max_samples`` cap for each forest tree (``LIQUIDITY_MAX_SAMPLES``).
    n_jobs : int
        Parallel jobs for training (``LIQUIDITY_N_JOBS``); default: the cores this
        process may run on (a training worker's, under Celery).
    random_seed : int
        Seed for every random choice in training (``LIQUIDITY_SEED``).
    refit : bool
        Publish the challenger refitted on its holdout rows too, with the parameters
        scored (``LIQUIDITY_REFIT``, ``1``/``0``); it is scored as fitted on the tuning
        rows either way.
    file_settle_seconds : float
        A file modified more recently than this is still being written
        (``LIQUIDITY_FILE_SETTLE_SECONDS``).
    alert_webhook : str
        URL that monitoring alerts are POSTed to as JSON ``{"text": ...}`` (a Slack,
        Mattermost or Teams incoming webhook, or a mail gateway); empty: only logged
        (``LIQUIDITY_ALERT_WEBHOOK``, see :mod:`liquidity_core.monitoring.alerts`).
    api_rate_limit : str
        Requests one client may make to ``/api/v1/*``, in the ``limits`` notation
        (``"600/minute"``, ``"10/second;600/minute"``); ``"off"`` disables the limit
        (``LIQUIDITY_API_RATE_LIMIT``).
    rate_limit_storage : str
        Where the request counts live: ``memory://`` (per process) or a Redis URL shared
        by every worker (``LIQUIDITY_RATE_LIMIT_STORAGE``).
    api_keys : str
        Empty: ``POST /api/v1/predict`` is open. Otherwise a file of sha256 hashes of the
        API keys, one per line, or a comma-separated list of such hashes
        (``LIQUIDITY_API_KEYS``).
    """

    database_url: str
    ingest_dir: Path
    model_dir: Path
    var_dir: Path
    cv_splits: int = 3
    holdout_snapshots: int = 3
    promotion_margin: float = 0.0
    max_train_rows_per_tree: int = 20_000
    n_jobs: int = field(default_factory=lambda: worker_cores())
    random_seed: int = 42
    refit: bool = REFIT_DEFAULT
    file_settle_seconds: float = 5.0
    alert_webhook: str = ""
    api_rate_limit: str = "600/minute"
    rate_limit_storage: str = "memory://"
    api_keys: str = ""

    def with_overrides(self, **changes) -> Settings:
        """Return a copy with some fields changed (used by tests and the CLI)."""
        return replace(self, **changes)

    def as_env(self) -> dict[str, str]:
        """The ``LIQUIDITY_*`` variables that make :func:`load_settings` return these
        settings (for child processes: Airflow, gunicorn, the CLI)."""
        env = {
            "LIQUIDITY_DATABASE_URL": self.database_url,
            "LIQUIDITY_INGEST_DIR": str(self.ingest_dir),
            "LIQUIDITY_MODEL_DIR": str(self.model_dir),
            "LIQUIDITY_VAR_DIR": str(self.var_dir),
        }
        env.update({var: str(getattr(self, name)) for name, (var, _) in _ENV_NAMES.items()})
        return env


_ENV_NAMES = {
    "cv_splits": ("LIQUIDITY_CV_SPLITS", int),
    "holdout_snapshots": ("LIQUIDITY_HOLDOUT_SNAPSHOTS", int),
    "promotion_margin": ("LIQUIDITY_PROMOTION_MARGIN", float),
    "max_train_rows_per_tree": ("LIQUIDITY_MAX_SAMPLES", int),
    "n_jobs": ("LIQUIDITY_N_JOBS", int),
    "random_seed": ("LIQUIDITY_SEED", int),
    "refit": ("LIQUIDITY_REFIT", flag),
    "file_settle_seconds": ("LIQUIDITY_FILE_SETTLE_SECONDS", float),
    "alert_webhook": ("LIQUIDITY_ALERT_WEBHOOK", str),
    "api_rate_limit": ("LIQUIDITY_API_RATE_LIMIT", str),
    "rate_limit_storage": ("LIQUIDITY_RATE_LIMIT_STORAGE", str),
    "api_keys": ("LIQUIDITY_API_KEYS", str),
}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: ``os.environ``).

    Parameters
    ----------
    env : mapping, default=None
        Environment to read; ``None`` means the process environment.

    Returns
    -------
    Settings

    Raises
    ------
    ConfigError
        When a numeric setting does not parse; the message names the variable.
    """
    env = os.environ if env is None else env
    var_dir = Path(env.get("LIQUIDITY_VAR_DIR") or PROJECT_ROOT / "var").resolve()
    database_url = env.get("LIQUIDITY_DATABASE_URL") or f"sqlite:///{var_dir / 'liquidity.db'}"
    values: dict = {}
    defaults = {
        f.name: f.default if f.default_factory is MISSING else f.default_factory()
        for f in fields(Settings)
    }
    for name, (var, kind) in _ENV_NAMES.items():
        raw = env.get(var)
        if raw is None or raw == "":
            values[name] = defaults[name]
            continue
        try:
            values[name] = kind(raw)
        except ValueError:
            raise ConfigError(f"{var}={raw!r} is not a valid {kind.__name__}") from None
    return Settings(
        database_url=database_url,
        ingest_dir=Path(env.get("LIQUIDITY_INGEST_DIR") or var_dir / "ingest").resolve(),
        model_dir=Path(env.get("LIQUIDITY_MODEL_DIR") or var_dir / "models").resolve(),
        var_dir=var_dir,
        **values,
    )
