"""Structural checks of the production deployment: docker-compose.yml, Dockerfile, .env.

There is no Docker engine here, so the compose file is read as YAML and its variables are
interpolated the way ``docker compose`` does (``${VAR}``, ``${VAR:-default}``,
``${VAR:?message}``, ``$$``). The Postgres init script runs for real against the local
server (under throw-away role and database names) to prove the web app's role can only read.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg2
import pytest
import yaml
from support.database import PG_URL
from support.env import liquidity_env
from support.paths import REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
INIT_SQL_SCRIPT = REPO / "deploy" / "postgres" / "init-databases.sh"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-worker-training",
    "airflow-triggerer",
}
SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "webapp"}
MODEL_DIR = "/opt/liquidity/models"
INGEST_DIR = "/opt/liquidity/ingest"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; $$ escapes.
_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


class MissingVariable(KeyError):
    pass


def interpolate(node, env: dict):
    """Substitute variables in every string value as ``docker compose`` does.

    Raises :class:`MissingVariable` for a required variable that is unset or empty.
    """

    def sub(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":?", "?") and empty:
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and empty:
            return arg
        return value or ""

    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if isinstance(node, str):
        return _VAR.sub(sub, node)
    return node


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def variables(node) -> dict[str, set[str]]:
    """Every variable the compose file's values reference, with the operators used."""
    found: dict[str, set[str]] = {}
    for _path, value in _walk_strings(node):
        for match in _VAR.finditer(value):
            if match["name"]:
                found.setdefault(match["name"], set()).add(match["op"] or "")
    return found


def _walk_strings(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk_strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk_strings(value, f"{path}[{i}]")
    elif node is not None:
        yield path, str(node)


def parse_env_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """(``NAME=value`` lines, names that only appear in ``# NAME=value`` comments)."""
    active, commented = {}, set()
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line):
            active[m[1]] = m[2]
        elif m := re.match(r"^#\s*([A-Z_][A-Z0-9_]*)=", line):
            commented.add(m[1])
    return active, commented


def generated_env(tmp_path: Path) -> dict[str, str]:
    """The values ``deploy/generate_env.py`` writes into a fresh ``.env``."""
    target = tmp_path / ".env"
    proc = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "generate_env.py"), str(target)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return parse_env_file(target)[0]


@pytest.fixture(scope="module")
def raw() -> dict:
    """The compose file as written (variables not substituted)."""
    return load_compose()


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    """The compose file as ``docker compose`` sees it with a generated ``.env``."""
    env = generated_env(tmp_path_factory.mktemp("env"))
    return interpolate(load_compose(), env)


def env_of(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in environment.items()}


def mounts(service: dict) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each short-syntax volume."""
    out = []
    for volume in service.get("volumes") or []:
        parts = volume.split(":")
        out.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return out


# --- services, health, executor ------------------------------------------------------------


def test_every_service_is_present(raw):
    assert set(raw["services"]) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(raw, name):
    check = raw["services"][name].get("healthcheck")
    assert check and not check.get("disable"), f"{name} has no healthcheck"
    test = check["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    assert check.get("interval") and check.get("retries")


_GUNICORN_CONFIG = """
import json, sys
from gunicorn.app.wsgiapp import WSGIApplication
sys.argv = ["gunicorn", *json.loads(sys.argv[1])]
cfg = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn").cfg
print(json.dumps({"worker_class": cfg.worker_class_str, "threads": cfg.threads,
                  "accesslog": cfg.accesslog, "worker_tmp_dir": cfg.worker_tmp_dir}))
"""


def test_the_web_app_runs_with_the_serving_settings_of_its_gunicorn_file(compose, tmp_path):
    """gunicorn reads the compose command as it would (in a process of its own: the file
    sets the metrics folder's variable): gthread with 2 threads, heartbeats in memory and
    no access log, which /metrics replaces (webapp/gunicorn_conf.py)."""
    command = compose["services"]["webapp"]["command"]
    assert "--config=python:webapp.gunicorn_conf" in command
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", _GUNICORN_CONFIG, json.dumps(command[1:])],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out.splitlines()[-1]) == {
        "worker_class": "gthread",
        "threads": 2,
        "accesslog": None,
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
    }


def test_healthchecks_probe_the_ports_the_services_listen_on(compose):
    services = compose["services"]
    api_check = services["airflow-apiserver"]["healthcheck"]["test"]
    assert "http://localhost:8080/api/v2/version" in api_check
    assert services["airflow-apiserver"]["ports"][0].endswith(":8080")
    assert "http://localhost:8974/health" in services["airflow-scheduler"]["healthcheck"]["test"]
    scheduler_env = env_of(services["airflow-scheduler"])
    assert scheduler_env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert "--bind=0.0.0.0:8000" in services["webapp"]["command"]
    assert services["webapp"]["command"][-1] == "webapp:create_app()"
    assert services["webapp"]["command"][0] == "gunicorn"
    assert "--no-control-socket" in services["webapp"]["command"]  # read-only root fs
    assert "http://localhost:8000/healthz" in services["webapp"]["healthcheck"]["test"]
    assert services["webapp"]["ports"][0].endswith(":8000")
    assert "DagProcessorJob" in " ".join(services["airflow-dag-processor"]["healthcheck"]["test"])
    assert "TriggererJob" in " ".join(services["airflow-triggerer"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["airflow-worker"]["healthcheck"]["test"])
    training = services["airflow-worker-training"]
    assert "inspect ping" in " ".join(training["healthcheck"]["test"])


def test_training_has_its_own_worker_on_the_training_queue(compose):
    """The retrain DAG's heavy tasks use queue "training" (test_dags.py); one worker
    listens on it alone, with the shared models and the writer's database role."""
    services = compose["services"]
    training = services["airflow-worker-training"]
    command = training["command"]
    assert command[:3] == ["airflow", "celery", "worker"]
    assert command[command.index("--queues") + 1] == "training"
    assert "--queues" not in services["airflow-worker"]["command"]  # the default queue
    assert ("models", MODEL_DIR, "rw") in mounts(training)
    assert (
        env_of(training)["LIQUIDITY_DATABASE_URL"]
        == env_of(services["airflow-worker"])["LIQUIDITY_DATABASE_URL"]
    )
    assert training["stop_grace_period"] == services["airflow-worker"]["stop_grace_period"]


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_runs_the_celery_executor_on_postgres_and_redis(compose, name):
    env = env_of(compose["services"][name])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:")
    assert env["AIRFLOW__CELERY__BROKER_URL"].endswith("@redis:6379/0")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:")
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )
    for key in (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__CORE__FERNET_KEY",
    ):
        assert len(env[key]) >= 32, key
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"


def test_startup_order(raw):
    services = raw["services"]
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == (
        "service_healthy"
    )
    assert services["webapp"]["depends_on"]["airflow-init"]["condition"] == (
        "service_completed_successfully"
    )
    init = " ".join(services["airflow-init"]["command"])
    assert "deploy/airflow-init.sh" in init
    script = (REPO / "deploy" / "airflow-init.sh").read_text()
    assert "airflow db migrate" in script and "liquidity db upgrade" in script


def test_the_image_is_built_from_this_repository(raw):
    for name in AIRFLOW_SERVICES | {"webapp"}:
        service = raw["services"][name]
        assert service["image"] == "${LIQUIDITY_IMAGE:-crypto-liquidity:latest}", name
        assert service["build"]["context"] == "."


# --- shared folders ------------------------------------------------------------------------


def test_models_volume_is_shared_by_workers_and_read_only_in_the_web_app(compose):
    services = compose["services"]
    assert "models" in compose["volumes"]
    worker = services["airflow-worker"]
    assert ("models", MODEL_DIR, "rw") in mounts(worker)
    assert env_of(worker)["LIQUIDITY_MODEL_DIR"] == MODEL_DIR
    web = services["webapp"]
    assert ("models", MODEL_DIR, "ro") in mounts(web)
    assert env_of(web)["LIQUIDITY_MODEL_DIR"] == MODEL_DIR
    assert web["read_only"] is True
    # The report the retrain DAG writes is served by the web app, read-only there too.
    assert ("reports", "/opt/liquidity/var/report", "rw") in mounts(worker)
    assert ("reports", "/opt/liquidity/var/report", "ro") in mounts(web)
    # Nothing but the workers (and the one-shot init) writes models.
    for name, service in services.items():
        writable = [m for m in mounts(service) if m[0] == "models" and m[2] != "ro"]
        assert not writable or name in (
            "airflow-worker",
            "airflow-worker-training",
            "airflow-init",
        ), name


def test_ingest_folder_is_bind_mounted_from_the_host_into_the_workers(raw, compose):
    worker = raw["services"]["airflow-worker"]
    assert f"${{LIQUIDITY_INGEST_HOST_DIR:-./var/ingest}}:{INGEST_DIR}" in worker["volumes"]
    assert ("./var/ingest", INGEST_DIR, "rw") in mounts(compose["services"]["airflow-worker"])
    assert env_of(compose["services"]["airflow-worker"])["LIQUIDITY_INGEST_DIR"] == INGEST_DIR
    # Nothing else but the one-shot init sees the drops.
    for name, service in compose["services"].items():
        if name not in ("airflow-worker", "airflow-init"):
            assert not [m for m in mounts(service) if m[1] == INGEST_DIR], name


def test_ingest_host_dir_can_be_overridden(tmp_path):
    env = {**generated_env(tmp_path), "LIQUIDITY_INGEST_HOST_DIR": "/srv/drops"}
    services = interpolate(load_compose(), env)["services"]
    assert ("/srv/drops", INGEST_DIR, "rw") in mounts(services["airflow-worker"])


# --- secrets -------------------------------------------------------------------------------

SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|_AUTH$")


def test_no_literal_secret_in_the_compose_file(raw):
    required = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]+\}$")
    for path, value in _walk_strings(raw):
        key = path.rsplit(".", 1)[-1]
        if SECRET_NAME.search(key) and not key.endswith("_FILE"):
            assert required.match(value), f"{path} = {value!r} is not taken from .env"
        # Credentials inside URLs: scheme://user:${SECRET:?...}@host
        for password in re.findall(r"://[^:/@\s]*:([^@\s]*)@", value):
            assert required.match(password), f"{path} embeds a literal password"


def test_every_secret_is_required_never_defaulted():
    for name, ops in variables(load_compose()).items():
        if SECRET_NAME.search(name):
            assert ops == {":?"}, f"${{{name}}} must always be written ${{{name}:?...}}: {ops}"


def test_a_missing_secret_stops_compose_with_a_message(tmp_path):
    env = generated_env(tmp_path)
    for name in ("_AIRFLOW_WWW_USER_PASSWORD", "POSTGRES_PASSWORD", "LIQUIDITY_WEB_DB_PASSWORD"):
        for broken in ({k: v for k, v in env.items() if k != name}, {**env, name: ""}):
            with pytest.raises(MissingVariable, match=f"{name}: set {name} in .env"):
                interpolate(load_compose(), broken)


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def test_airflow_logins_use_the_fab_auth_manager(compose):
    """Every Airflow component runs the FAB auth manager (users and roles in the Airflow
    database); the simple auth manager is left to `make run`, and its provider is a
    declared dependency in the lock the image installs."""
    for name in AIRFLOW_SERVICES:
        env = env_of(compose["services"][name])
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER, name
        assert not [k for k in env if "SIMPLE_AUTH_MANAGER" in k], name
    assert re.search(
        r"^apache-airflow-providers-fab==", (REPO / "requirements.txt").read_text(), re.M
    )
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^\s*"apache-airflow-providers-fab[>=<~ ]', pyproject, re.M)


def test_the_admin_login_comes_from_the_environment(raw, compose):
    """airflow-init creates the Admin user from .env, as Airflow's official compose does
    (_AIRFLOW_WWW_USER_*), and only airflow-init ever holds the password."""
    init = env_of(raw["services"]["airflow-init"])
    assert init["_AIRFLOW_WWW_USER_PASSWORD"] == (
        "${_AIRFLOW_WWW_USER_PASSWORD:?set _AIRFLOW_WWW_USER_PASSWORD in .env}"
    )
    assert init["_AIRFLOW_WWW_USER_USERNAME"].startswith("${_AIRFLOW_WWW_USER_USERNAME")
    assert env_of(compose["services"]["airflow-init"])["_AIRFLOW_WWW_USER_CREATE"] == "true"
    script = (REPO / "deploy" / "airflow-init.sh").read_text()
    create = script.index("airflow users create")
    assert "--role" in script[create:] and '"${_AIRFLOW_WWW_USER_ROLE:-Admin}"' in script
    # An existing user gets the password of .env again: .env stays the truth.
    assert "airflow users reset-password" in script[create:]
    # The user is created after the metadata database (and FAB's tables) are migrated.
    assert script.index("airflow db migrate") < create
    for name, service in raw["services"].items():
        if name != "airflow-init":
            assert not [k for k in env_of(service) if k.startswith("_AIRFLOW_WWW_USER_")], name
            assert "AIRFLOW_ADMIN_PASSWORD" not in env_of(service), name


# --- users and privileges ------------------------------------------------------------------


def _is_root(user: str) -> bool:
    uid = user.split(":", 1)[0]
    return uid in ("", "0", "root")


@pytest.mark.parametrize("name", sorted(SERVICES - {"airflow-init"}))
def test_no_container_runs_as_root(raw, compose, name):
    assert "user" in raw["services"][name], f"{name} sets no user"
    assert not _is_root(str(compose["services"][name]["user"])), name
    assert "no-new-privileges:true" in compose["services"][name].get("security_opt", [])


def test_airflow_init_is_root_only_to_prepare_the_shared_folders(raw, compose):
    """As in Airflow's official compose, airflow-init starts as root to mkdir and chown -R
    the mounted folders to AIRFLOW_UID:0, then drops to AIRFLOW_UID:0 before any airflow or
    liquidity command; it refuses an AIRFLOW_UID of 0."""
    init = compose["services"]["airflow-init"]
    assert init["user"] == "0:0"
    assert "no-new-privileges:true" in init["security_opt"]
    assert env_of(raw["services"]["airflow-init"])["AIRFLOW_UID"] == "${AIRFLOW_UID:-50000}"
    script = (REPO / "deploy" / "airflow-init.sh").read_text()
    root_part = script[script.index('if [ "$(id -u)" = 0 ]') : script.index("\nfi\n")]
    assert 'mkdir -p "${shared_dirs[@]}"' in root_part
    assert 'chown -R "$uid:0" "${shared_dirs[@]}"' in root_part
    assert 'exec setpriv --reuid="$uid" --regid=0 --clear-groups' in root_part
    assert "refusing to run as root" in root_part
    assert "airflow " not in root_part and "liquidity " not in root_part
    # The folders it prepares are exactly the ones mounted into it.
    env = env_of(init)
    prepared = {
        env["LIQUIDITY_MODEL_DIR"],
        env["LIQUIDITY_INGEST_DIR"],
        f"{env['LIQUIDITY_VAR_DIR']}/report",
        "/opt/airflow/logs",  # AIRFLOW_HOME of the image
    }
    for var in ("LIQUIDITY_MODEL_DIR", "LIQUIDITY_INGEST_DIR", "LIQUIDITY_VAR_DIR", "AIRFLOW_HOME"):
        assert f"${{{var}:?}}" in script, var
    assert {target for _, target, _ in mounts(init)} == prepared


def test_airflow_uid_defaults_to_non_root(raw):
    for name in (AIRFLOW_SERVICES - {"airflow-init"}) | {"webapp"}:
        assert raw["services"][name]["user"] == "${AIRFLOW_UID:-50000}:0", name
    assert "refusing to run as root" in (REPO / "deploy" / "airflow-init.sh").read_text()


def _default(script: str, var: str) -> str:
    match = re.search(r"\$\{" + var + r":-([a-z_]+)\}", script)
    assert match, f"{var} has no default in {INIT_SQL_SCRIPT.name}"
    return match[1]


def test_database_roles_match_the_init_script(compose):
    script = INIT_SQL_SCRIPT.read_text()
    services = compose["services"]
    web_user = _default(script, "LIQUIDITY_WEB_DB_USER")
    owner = _default(script, "LIQUIDITY_DB_USER")
    db_name = _default(script, "LIQUIDITY_DB_NAME")
    web_url = env_of(services["webapp"])["LIQUIDITY_DATABASE_URL"]
    assert web_url.startswith(f"postgresql+psycopg2://{web_user}:")
    assert web_url.endswith(f"@postgres:5432/{db_name}")
    assert env_of(services["airflow-apiserver"])["LIQUIDITY_DATABASE_URL"] == web_url
    for name in ("airflow-worker", "airflow-worker-training", "airflow-init"):
        url = env_of(services[name])["LIQUIDITY_DATABASE_URL"]
        assert url.startswith(f"postgresql+psycopg2://{owner}:"), name
        assert url.endswith(f"@postgres:5432/{db_name}")
    # Each role's password reaches the init script under the name it reads.
    pg_env = env_of(services["postgres"])
    for var in ("AIRFLOW_DB_PASSWORD", "LIQUIDITY_DB_PASSWORD", "LIQUIDITY_WEB_DB_PASSWORD"):
        assert f'"${{{var}:?' in script or f"${{{var}:?" in script
        assert pg_env[var]
    assert f":{pg_env['LIQUIDITY_WEB_DB_PASSWORD']}@" in web_url
    assert ("./deploy/postgres", "/docker-entrypoint-initdb.d", "ro") in mounts(
        services["postgres"]
    )
    assert os.access(INIT_SQL_SCRIPT, os.X_OK)


def test_only_the_front_ends_publish_ports_on_localhost_by_default(raw):
    published = {name for name, s in raw["services"].items() if s.get("ports")}
    assert published == {"airflow-apiserver", "webapp"}
    for name in published:
        for port in raw["services"][name]["ports"]:
            assert port.startswith("${LIQUIDITY_BIND_ADDRESS:-127.0.0.1}:"), port


# --- .env.example and generate_env.py ------------------------------------------------------


def test_env_example_lists_every_variable_the_compose_file_uses():
    active, commented = parse_env_file(ENV_EXAMPLE)
    used = variables(load_compose())
    required = {name for name, ops in used.items() if ":?" in ops}
    assert required <= set(active), f"missing from .env.example: {required - set(active)}"
    assert set(used) <= set(active) | commented, set(used) - set(active) - commented
    # No secret value is committed: every secret placeholder is empty.
    for name, value in active.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example carries a value for {name}"


def test_the_example_as_committed_does_not_start():
    active, _ = parse_env_file(ENV_EXAMPLE)
    with pytest.raises(MissingVariable):
        interpolate(load_compose(), active)


def test_generate_env_fills_every_secret_and_keeps_set_values(tmp_path):
    target = tmp_path / ".env"
    target.write_text(ENV_EXAMPLE.read_text().replace("REDIS_PASSWORD=", "REDIS_PASSWORD=mine"))
    script = [sys.executable, str(REPO / "deploy" / "generate_env.py"), str(target)]
    subprocess.run(script, check=True, capture_output=True, timeout=30)
    first, _ = parse_env_file(target)
    assert first["REDIS_PASSWORD"] == "mine"
    required = {n for n, ops in variables(load_compose()).items() if ":?" in ops}
    assert all(first[name] for name in required)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    values = [first[n] for n in required if SECRET_NAME.search(n) and n != "REDIS_PASSWORD"]
    assert len(set(values)) == len(values)  # independent secrets
    assert all(re.fullmatch(r"[A-Za-z0-9_=-]{32,}", v) for v in values)  # URL-safe
    subprocess.run(script, check=True, capture_output=True, timeout=30)
    assert parse_env_file(target)[0] == first  # idempotent
    interpolate(load_compose(), first)  # compose would start


# --- the Compose Specification, and what each service is given ----------------------------

COMPOSE_SPEC = (
    Path(__file__).resolve().parents[2] / "support" / "compose_spec" / "compose-spec.json"
)


def _compose_spec_errors(document: dict) -> list[str]:
    import json

    import jsonschema

    schema = json.loads(COMPOSE_SPEC.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_follows_the_compose_specification(raw, compose):
    """docker-compose.yml, as written and as interpolated, against the Compose
    Specification's JSON schema (vendored in tests/support/compose_spec/)."""
    assert _compose_spec_errors(raw) == []
    assert _compose_spec_errors(compose) == []


def test_the_schema_check_catches_what_compose_would_reject(raw):
    import copy

    typo = copy.deepcopy(raw)
    typo["services"]["webapp"]["helthcheck"] = typo["services"]["webapp"].pop("healthcheck")
    assert any("helthcheck" in e for e in _compose_spec_errors(typo))
    bad_condition = copy.deepcopy(raw)
    bad_condition["services"]["webapp"]["depends_on"]["redis"]["condition"] = "ready"
    assert _compose_spec_errors(bad_condition)
    bad_ports = copy.deepcopy(raw)
    bad_ports["services"]["webapp"]["ports"] = "8000:8000"  # a list is required
    assert _compose_spec_errors(bad_ports)


# Variables a service may legitimately receive empty: the code has a default for each.
OPTIONAL_WHEN_EMPTY = {
    "LIQUIDITY_API_KEYS",  # empty: POST /api/v1/predict is open
    "LIQUIDITY_ALERT_WEBHOOK",  # empty: alerts are logged only
    "LIQUIDITY_N_JOBS",  # empty: all the worker's cores
}

# What each service must be given to do its job (beyond the image's ENV).
NEEDS = {
    "postgres": {
        "POSTGRES_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
        "LIQUIDITY_DB_PASSWORD",
        "LIQUIDITY_WEB_DB_PASSWORD",
    },
    "redis": {"REDIS_PASSWORD"},
    "airflow-init": {
        "AIRFLOW_UID",
        "LIQUIDITY_DATABASE_URL",
        "LIQUIDITY_MODEL_DIR",
        "LIQUIDITY_INGEST_DIR",
        "LIQUIDITY_VAR_DIR",
        "_AIRFLOW_WWW_USER_CREATE",
        "_AIRFLOW_WWW_USER_USERNAME",
        "_AIRFLOW_WWW_USER_PASSWORD",
    },
    "airflow-apiserver": {"LIQUIDITY_DATABASE_URL"},
    "airflow-worker": {
        "LIQUIDITY_DATABASE_URL",
        "LIQUIDITY_MODEL_DIR",
        "LIQUIDITY_INGEST_DIR",
        "LIQUIDITY_VAR_DIR",
        "LIQUIDITY_ALERT_WEBHOOK",
        "LIQUIDITY_N_JOBS",
    },
    "webapp": {
        "LIQUIDITY_DATABASE_URL",
        "LIQUIDITY_MODEL_DIR",
        "LIQUIDITY_VAR_DIR",
        "LIQUIDITY_API_RATE_LIMIT",
        "LIQUIDITY_RATE_LIMIT_STORAGE",
        "LIQUIDITY_API_KEYS",
    },
}
NEEDS["airflow-worker-training"] = NEEDS["airflow-worker"]
AIRFLOW_NEEDS = {
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
}
for _name in AIRFLOW_SERVICES:
    NEEDS.setdefault(_name, set())
    NEEDS[_name] = NEEDS[_name] | AIRFLOW_NEEDS


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_gets_every_variable_it_needs(compose, name):
    """With the .env that generate_env.py writes, each service is given each variable it
    needs, with a value unless the code has a default for an empty one."""
    env = env_of(compose["services"][name])
    missing = NEEDS[name] - set(env)
    assert not missing, f"{name} is not given {sorted(missing)}"
    empty = {k for k, v in env.items() if v == ""} - OPTIONAL_WHEN_EMPTY
    assert not empty, f"{name} gets empty {sorted(empty)}"


def test_alert_webhook_and_n_jobs_reach_both_workers(tmp_path):
    env = {
        **generated_env(tmp_path),
        "LIQUIDITY_ALERT_WEBHOOK": "https://hooks.example.org/T0/B0/x",
        "LIQUIDITY_N_JOBS": "6",
    }
    services = interpolate(load_compose(), env)["services"]
    for name in ("airflow-worker", "airflow-worker-training"):
        worker = env_of(services[name])
        assert worker["LIQUIDITY_ALERT_WEBHOOK"] == "https://hooks.example.org/T0/B0/x", name
        assert worker["LIQUIDITY_N_JOBS"] == "6", name
    # Unset, they reach the workers empty: the code's defaults (logged alerts, every core).
    services = interpolate(load_compose(), generated_env(tmp_path))["services"]
    for name in ("airflow-worker", "airflow-worker-training"):
        worker = env_of(services[name])
        assert worker["LIQUIDITY_ALERT_WEBHOOK"] == worker["LIQUIDITY_N_JOBS"] == "", name
    # Only the task runners train and alert.
    for name, service in services.items():
        if name not in ("airflow-worker", "airflow-worker-training"):
            assert "LIQUIDITY_N_JOBS" not in env_of(service), name
    _, commented = parse_env_file(ENV_EXAMPLE)
    assert {"LIQUIDITY_ALERT_WEBHOOK", "LIQUIDITY_N_JOBS", "AIRFLOW_UID"} <= commented
    example = ENV_EXAMPLE.read_text()
    assert "os.cpu_count()" in example


def test_quickstart_in_the_compose_header_is_complete():
    header = COMPOSE.read_text().split("\n---\n", 1)[0]
    steps = [
        "cp .env.example .env",
        "python3 deploy/generate_env.py .env",
        'echo "AIRFLOW_UID=$(id -u)" >> .env',
        "mkdir -p var/ingest",
        "docker compose up -d --build",
    ]
    positions = [header.index(step) for step in steps]
    assert positions == sorted(positions), "the quickstart steps are out of order"
    assert "not by a shell" in header  # .env values are literal


def test_prometheus_scrapes_the_web_app_metrics_with_a_key_from_a_file():
    config = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "liquidity-webapp"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"] == ["webapp:8000"]
    auth = job["authorization"]
    assert auth.get("type", "Bearer") == "Bearer"
    assert auth["credentials_file"].startswith("/")
    assert "credentials" not in auth  # never the key itself in the config
    # The commented service in the compose file mounts the same file and this config.
    text = COMPOSE.read_text()
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in text
    assert f":{auth['credentials_file']}:ro" in text


# --- Dockerfile ----------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_runs_as_a_non_root_user():
    instructions = _dockerfile_instructions()
    args = {}
    for op, rest in instructions:
        if op == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
    users = [rest for op, rest in instructions if op == "USER"]
    assert users, "the Dockerfile sets no USER"
    final = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], ""), users[-1])
    assert not _is_root(final), users[-1]
    assert int(args["AIRFLOW_UID"]) > 0
    # USER comes after every RUN: nothing runs as root at container start.
    last_user = max(i for i, (op, _) in enumerate(instructions) if op == "USER")
    assert all(op != "RUN" for op, _ in instructions[last_user:])


def test_dockerfile_installs_the_lock_and_the_project():
    instructions = _dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    assert instructions[0][1] in ("python:3.11-slim", "apache/airflow:3.3.2-python3.11")
    runs = " && ".join(rest for op, rest in instructions if op == "RUN")
    assert "requirements.txt" in runs and "pip install -e /opt/liquidity" in runs.replace(
        "--no-deps ", ""
    )
    copies = [shlex.split(rest)[0] for op, rest in instructions if op == "COPY"]
    for needed in ("requirements.txt", "liquidity_core/", "webapp/", "dags/", "sql/", "deploy/"):
        assert needed in copies, needed
    env_lines = " ".join(rest for op, rest in instructions if op in ("ENV", "ARG"))
    assert not SECRET_NAME.search(env_lines.replace("AIRFLOW_UID", "")), "secret in the image"


def test_image_paths_match_the_compose_mounts(compose):
    env = {}
    for op, rest in _dockerfile_instructions():
        if op == "ENV":
            for item in shlex.split(rest):
                if "=" in item:
                    name, value = item.split("=", 1)
                    env[name] = value
    assert env["LIQUIDITY_MODEL_DIR"] == MODEL_DIR
    assert env["LIQUIDITY_INGEST_DIR"] == INGEST_DIR
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/liquidity/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/liquidity/plugins"
    logs = f"{env['AIRFLOW_HOME']}/logs"
    for name in AIRFLOW_SERVICES:
        assert ("airflow-logs", logs, "rw") in mounts(compose["services"][name]), name
    assert env["AIRFLOW_HOME"] == "/opt/airflow"  # what airflow-init's checks assume


def test_the_distributed_test_configures_what_compose_configures(raw, tmp_path):
    """tests/e2e/test_distributed.py stands in for compose: it sets every Airflow option compose
    sets (with local values), so the two cannot drift apart unnoticed."""
    from support.distributed import CeleryCluster

    cluster = CeleryCluster(tmp_path, tmp_path / "dags")
    compose_keys = {k for k in env_of(raw["x-airflow-common"]) if k.startswith("AIRFLOW__")}
    assert compose_keys - set(cluster.env) == set()
    assert cluster.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert cluster.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".env", ".git", ".venv", "var"):
        assert entry in ignored, entry


# --- the Postgres init script, for real ----------------------------------------------------


@pytest.fixture
def initialised_server():
    """Run deploy/postgres/init-databases.sh against the local server under unique names."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    tag = f"ci{secrets.token_hex(4)}"
    server = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "names": {
            "AIRFLOW_DB_NAME": f"{tag}_airflow",
            "AIRFLOW_DB_USER": f"{tag}_airflow",
            "LIQUIDITY_DB_NAME": f"{tag}_liquidity",
            "LIQUIDITY_DB_USER": f"{tag}_liquidity",
            "LIQUIDITY_WEB_DB_USER": f"{tag}_web",
        },
        "passwords": {
            "AIRFLOW_DB_PASSWORD": secrets.token_urlsafe(16),
            "LIQUIDITY_DB_PASSWORD": secrets.token_urlsafe(16),
            "LIQUIDITY_WEB_DB_PASSWORD": secrets.token_urlsafe(16),
        },
    }
    env = {
        **os.environ,
        **server["names"],
        **server["passwords"],
        "PGHOST": server["host"],
        "PGPORT": str(server["port"]),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_DB": "postgres",
    }
    if url.password:
        env["PGPASSWORD"] = url.password
    try:
        for _ in range(2):  # idempotent: a second run changes nothing and does not fail
            proc = subprocess.run(
                ["bash", str(INIT_SQL_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 0, proc.stderr
            for password in server["passwords"].values():
                assert password not in proc.stdout + proc.stderr
        yield server
    finally:
        admin = psycopg2.connect(
            host=server["host"],
            port=server["port"],
            user=env["POSTGRES_USER"],
            password=url.password,
            dbname="postgres",
        )
        admin.autocommit = True
        names = server["names"]
        with admin.cursor() as cur:
            for db_name in (names["AIRFLOW_DB_NAME"], names["LIQUIDITY_DB_NAME"]):
                cur.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            for role in (
                names["LIQUIDITY_WEB_DB_USER"],
                names["LIQUIDITY_DB_USER"],
                names["AIRFLOW_DB_USER"],
            ):
                cur.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def _connect(server: dict, user_var: str, password_var: str, db_var: str):
    return psycopg2.connect(
        host=server["host"],
        port=server["port"],
        user=server["names"][user_var],
        password=server["passwords"][password_var],
        dbname=server["names"][db_var],
    )


def test_init_script_makes_the_web_role_read_only(initialised_server):
    from liquidity_core.store import db

    server, names = initialised_server, initialised_server["names"]
    # Migrations run as the owner, as airflow-init does.
    owner_url = (
        f"postgresql+psycopg2://{names['LIQUIDITY_DB_USER']}:"
        f"{server['passwords']['LIQUIDITY_DB_PASSWORD']}@{server['host']}:{server['port']}/"
        f"{names['LIQUIDITY_DB_NAME']}"
    )
    engine = db.get_engine(owner_url)
    try:
        assert db.upgrade(engine)
    finally:
        engine.dispose()
        db.get_engine.cache_clear()

    web = _connect(
        server, "LIQUIDITY_WEB_DB_USER", "LIQUIDITY_WEB_DB_PASSWORD", "LIQUIDITY_DB_NAME"
    )
    try:
        with web.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM market_snapshots")
            assert cur.fetchone() == (0,)
            cur.execute("SELECT COUNT(*) FROM model_versions")
            cur.execute("SHOW default_transaction_read_only")
            assert cur.fetchone() == ("on",)
        web.rollback()
        for statement in (
            "INSERT INTO liquidity_alembic_version (version_num) VALUES ('999_x')",
            "DELETE FROM market_snapshots",
            "UPDATE model_versions SET status = 'champion'",
            "CREATE TABLE evil (x int)",
            "DROP TABLE market_snapshots",
        ):
            # Even a transaction that asks for READ WRITE is refused by the privileges.
            with web.cursor() as cur:
                cur.execute("BEGIN READ WRITE")
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
            web.rollback()
    finally:
        web.close()
    # Each role reaches its own database only.
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(server, "LIQUIDITY_WEB_DB_USER", "LIQUIDITY_WEB_DB_PASSWORD", "AIRFLOW_DB_NAME")
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(server, "AIRFLOW_DB_USER", "AIRFLOW_DB_PASSWORD", "LIQUIDITY_DB_NAME")


# --- deploy/airflow-init.sh, for real ------------------------------------------------------


def test_deploy_scripts_parse():
    for script in sorted((REPO / "deploy").rglob("*.sh")):
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script.name}: {proc.stderr}"
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
        assert "set -euo pipefail" in script.read_text(), script.name


@pytest.mark.slow
def test_airflow_init_migrates_both_databases_as_a_non_root_user():
    """The airflow-init service's script as compose runs it: started as root with
    AIRFLOW_UID=65534, it creates and chowns the shared folders (root-owned, as Docker
    creates a missing bind mount), then as uid 65534 in group 0 migrates a fresh Airflow
    metadata DB and the liquidity DB; it refuses a missing or zero AIRFLOW_UID; run as the
    user on a folder it cannot write, it names the folder."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    from support.distributed import BIN, create_database, drop_database, pg_url

    from liquidity_core.store import migrate

    tag = secrets.token_hex(4)
    airflow_db, liquidity_db = f"init_airflow_{tag}", f"init_liquidity_{tag}"
    root = Path(tempfile.mkdtemp(prefix="airflow_init_"))  # not under pytest's 0700 tmp
    root.chmod(0o755)
    # AIRFLOW_HOME belongs to the user in the image; the shared folders are left to the script
    # when it runs as root.
    (root / "airflow").mkdir()
    if os.geteuid() == 0:
        os.chown(root / "airflow", 65534, 0)
    (root / "airflow").chmod(0o770)
    shared = ("airflow/logs", "ingest", "models", "var/report")
    for sub in ("var", *shared):
        (root / sub).mkdir(exist_ok=True)
        if os.geteuid() != 0:
            (root / sub).chmod(0o770)
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(root / "airflow"),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url(airflow_db),
        **liquidity_env(root, pg_url(liquidity_db)),
    }
    script = ["bash", str(REPO / "deploy" / "airflow-init.sh")]
    # The one capability kept, read-search, only lets uid 65534 reach the interpreter (which
    # may live under /root); it grants no write anywhere.
    keep_read = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    as_user = []
    if os.geteuid() == 0:
        as_user = ["setpriv", "--reuid=65534", "--regid=0", "--clear-groups", *keep_read]
        # The script's own `setpriv` (its drop to AIRFLOW_UID) gets the same capability.
        shim = root / "shim"
        shim.mkdir()
        (shim / "setpriv").write_text(
            f'#!/bin/sh\nexec /usr/bin/setpriv {" ".join(keep_read)} "$@"\n'
        )
        (shim / "setpriv").chmod(0o755)
    create_database(airflow_db)
    create_database(liquidity_db)
    try:
        if os.geteuid() == 0:
            for uid in (None, "0"):
                run_env = {**env, **({"AIRFLOW_UID": uid} if uid else {})}
                proc = subprocess.run(
                    script, env=run_env, capture_output=True, text=True, timeout=60
                )
                assert proc.returncode == 1 and "refusing to run as root" in proc.stderr
            root_env = {**env, "AIRFLOW_UID": "65534", "PATH": f"{shim}:{env['PATH']}"}
            proc = subprocess.run(
                script, env=root_env, capture_output=True, text=True, timeout=300, cwd=root
            )
            assert "airflow-init: running as uid 65534, gid 0" in proc.stdout, proc.stderr
            for sub in shared:
                info = (root / sub).stat()
                assert (info.st_uid, info.st_gid) == (65534, 0), sub
        else:
            proc = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "airflow-init: done" in proc.stdout
        with psycopg2.connect(pg_url(airflow_db, driver="postgresql")) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT version_num FROM alembic_version")
                assert cur.fetchone()
        with psycopg2.connect(pg_url(liquidity_db, driver="postgresql")) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT version_num FROM liquidity_alembic_version")
                assert cur.fetchall() == [(migrate.head(),)]

        # A shared folder the user cannot write stops the stack with its name.
        (root / "ingest").chmod(0o550)
        proc = subprocess.run(
            as_user + script, env=env, capture_output=True, text=True, timeout=300, cwd=root
        )
        assert proc.returncode == 1
        assert f"{root / 'ingest'} is not a folder writable by uid" in proc.stderr
    finally:
        drop_database(airflow_db)
        drop_database(liquidity_db)
        shutil.rmtree(root, ignore_errors=True)
